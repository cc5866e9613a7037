//! How `n` inputs are cut over `ranks`: contiguous blocks whose sizes differ by at most one, in
//! rank order, so that gathering the blocks in rank order gives the results in input order.

use std::ops::Range;

/// The inputs rank `rank` of `ranks` gets out of `n`: `rank * n / ranks .. (rank + 1) * n / ranks`.
///
/// ```
/// use multiprocessing_mpi::block;
///
/// // 10 inputs over 4 ranks: 2, 3, 2, 3.
/// let blocks: Vec<_> = (0..4).map(|r| block(10, r, 4)).collect();
/// assert_eq!(blocks, [0..2, 2..5, 5..7, 7..10]);
/// ```
pub fn block(n: usize, rank: usize, ranks: usize) -> Range<usize> {
    assert!(ranks > 0 && rank < ranks, "rank {rank} out of 0..{ranks}");
    // u128: n * ranks cannot overflow.
    let at = |r: usize| (r as u128 * n as u128 / ranks as u128) as usize;
    at(rank)..at(rank + 1)
}

#[cfg(test)]
mod tests {
    use super::block;

    #[test]
    fn blocks_cover_the_inputs_in_order_and_differ_by_at_most_one() {
        for n in 0..40 {
            for ranks in 1..9 {
                let blocks: Vec<_> = (0..ranks).map(|r| block(n, r, ranks)).collect();
                assert_eq!(blocks[0].start, 0);
                assert_eq!(blocks[ranks - 1].end, n);
                for pair in blocks.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start);
                }
                let sizes: Vec<_> = blocks.iter().map(|b| b.len()).collect();
                let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(max - min <= 1, "n={n} ranks={ranks}: {sizes:?}");
            }
        }
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        assert_eq!(block(usize::MAX, 1, 2).end, usize::MAX);
    }
}

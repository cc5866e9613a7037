//! The work the `mpi_map` example maps over the ranks. The tests and the notebook run the same
//! function through `Pool::map` and compare.

/// How many primes there are below `below` (trial division: CPU-bound, no memory traffic).
pub fn count_primes(below: u64) -> u64 {
    (2..below)
        .filter(|&n| (2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
        .count() as u64
}

/// The example's inputs: 16 limits, 10 000 to 160 000 (the later ones take longer).
pub fn inputs() -> Vec<u64> {
    (1..=16).map(|i| i * 10_000).collect()
}

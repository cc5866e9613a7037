//! One workload of `pool_bench` at a time, Rust side only, printing each repetition's figure: for
//! alternating two builds (before/after a change) many times on a noisy machine, and for profiling
//! one workload (`perf record`, `strace -c`) without the others.
//!
//! ```text
//! cargo run --release --example one_workload -- q6 5      # Q6: median of 20, five times
//! cargo run --release --example one_workload -- q3 5      # Q3 (q3parts: new / map / drop apart)
//! cargo run --release --example one_workload -- floor 5   # the raw fork floor under Q6 and Q3
//! cargo run --release --example one_workload -- map 5     # Pool(2).map over 1M tiny tasks
//! cargo run --release --example one_workload -- bulk 3    # map(len) and map(echo), 64 x 4 MiB
//! cargo run --release --example one_workload -- pipe 3    # Pipe ping-pong, 10 000 round trips
//! cargo run --release --example one_workload -- imapu 3   # imap_unordered, 20 000 tiny tasks
//! cargo run --release --example one_workload -- async 3   # 5000 apply_async, then every get
//! cargo run --release --example one_workload -- strings 5 # map(upper) over 200 000 short strings
//! cargo run --release --example one_workload -- floats 5  # map(sum) over 200 x 50 000 f64
//! ```

use multiprocessing::{Pipe, Pool, Process};

#[path = "common/floor.rs"]
mod floor;
use std::time::Instant;
fn cubes(n: u64) -> u64 {
    n.pow(3)
}
fn byte_len(b: Vec<u8>) -> usize {
    b.len()
}
fn echo(b: Vec<u8>) -> Vec<u8> {
    b
}
fn shout(s: String) -> String {
    s.to_uppercase()
}
fn total(v: Vec<f64>) -> f64 {
    v.iter().sum()
}
fn main() -> multiprocessing::Result<()> {
    let what = std::env::args().nth(1).unwrap_or_default();
    let reps: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    match what.as_str() {
        "q6" => {
            for _ in 0..reps {
                let mut v = Vec::new();
                for _ in 0..20 {
                    let t = Instant::now();
                    let mut ps: Vec<Process> = (0..4).map(|_| Process::new(|| ())).collect();
                    for p in &mut ps {
                        p.start()?;
                    }
                    for p in &ps {
                        assert_eq!(p.join()?, 0);
                    }
                    v.push(t.elapsed().as_secs_f64() * 1e3);
                }
                v.sort_by(f64::total_cmp);
                println!("q6 median {:.3} ms", v[10]);
            }
        }
        "floor" => {
            for _ in 0..reps {
                let (q6, q3) = floor::raw_fork_floors();
                println!("floor q6 {q6:.3} q3 {q3:.3} ms");
            }
        }
        "q3" => {
            for _ in 0..reps {
                let mut v = Vec::new();
                for _ in 0..10 {
                    let t = Instant::now();
                    let out = Pool::with(4, |pool| pool.map(cubes, [1, 2, 3, 4, 5]))?;
                    assert_eq!(out, [1, 8, 27, 64, 125]);
                    v.push(t.elapsed().as_secs_f64() * 1e3);
                }
                v.sort_by(f64::total_cmp);
                println!("q3 median {:.3} ms", v[5]);
            }
        }
        "map" => {
            let pool = Pool::new(2)?;
            pool.map(cubes, 0..100)?;
            for _ in 0..reps {
                let t = Instant::now();
                let out = pool.map(cubes, 0..1_000_000u64)?;
                assert_eq!(out.len(), 1_000_000);
                println!("map {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
            }
        }
        "bulk" => {
            let pool = Pool::new(2)?;
            pool.map(cubes, 0..100)?;
            let bufs: Vec<Vec<u8>> = (0..64).map(|i| vec![(i % 251) as u8; 4 << 20]).collect();
            for _ in 0..reps {
                let b = bufs.clone();
                let t = Instant::now();
                assert_eq!(pool.map(byte_len, b)?[63], 4 << 20);
                let a = t.elapsed();
                let b = bufs.clone();
                let t = Instant::now();
                assert_eq!(pool.map(echo, b)?[7][0], 7);
                let e = t.elapsed();
                println!(
                    "bulk len {:.1} ms echo {:.1} ms",
                    a.as_secs_f64() * 1e3,
                    e.as_secs_f64() * 1e3
                );
            }
        }
        "pipe" => {
            let (a, b) = Pipe::new()?;
            let n = 10_000u64;
            let mut c = Process::new(move || {
                for _ in 0..n * reps as u64 {
                    let Ok(x) = b.recv::<u64>() else { return };
                    b.send(x).unwrap();
                }
            });
            c.start()?;
            for _ in 0..reps {
                let t = Instant::now();
                for i in 0..n {
                    a.send(i)?;
                    a.recv::<u64>()?;
                }
                println!("pipe {:.2} us", t.elapsed().as_secs_f64() / n as f64 * 1e6);
            }
            c.join()?;
        }
        "q3parts" => {
            for _ in 0..reps {
                let (mut a, mut b, mut c) = (vec![], vec![], vec![]);
                for _ in 0..10 {
                    let t = Instant::now();
                    let pool = Pool::new(4)?;
                    let t1 = Instant::now();
                    let out = pool.map(cubes, [1, 2, 3, 4, 5])?;
                    let t2 = Instant::now();
                    drop(pool);
                    let t3 = Instant::now();
                    assert_eq!(out, [1, 8, 27, 64, 125]);
                    a.push((t1 - t).as_secs_f64() * 1e3);
                    b.push((t2 - t1).as_secs_f64() * 1e3);
                    c.push((t3 - t2).as_secs_f64() * 1e3);
                }
                for v in [&mut a, &mut b, &mut c] {
                    v.sort_by(f64::total_cmp);
                }
                println!("q3 new {:.3} map {:.3} drop {:.3} ms", a[5], b[5], c[5]);
            }
        }
        "imapu" => {
            let pool = Pool::new(2)?;
            pool.map(cubes, 0..100)?;
            for _ in 0..reps {
                let t = Instant::now();
                let n = pool
                    .imap_unordered(cubes, 0..20_000u64)?
                    .collect::<Result<Vec<_>, _>>()?
                    .len();
                assert_eq!(n, 20_000);
                println!("imapu {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
            }
        }
        "async" => {
            let pool = Pool::new(2)?;
            pool.map(cubes, 0..100)?;
            for _ in 0..reps {
                let t = Instant::now();
                let results: Vec<_> = (0..5000u64)
                    .map(|i| pool.apply_async(cubes, i))
                    .collect::<Result<_, _>>()?;
                for r in results {
                    r.get()?;
                }
                println!("async {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
            }
        }
        "strings" => {
            let pool = Pool::new(2)?;
            pool.map(cubes, 0..100)?;
            let words: Vec<String> = (0..200_000).map(|i| format!("word{i:08}")).collect();
            for _ in 0..reps {
                let input = words.clone();
                let t = Instant::now();
                assert_eq!(pool.map(shout, input)?[1], "WORD00000001");
                println!("strings {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
            }
        }
        "strings-raw" => {
            let words: Vec<String> = (0..200_000).map(|i| format!("word{i:08}")).collect();
            for _ in 0..reps {
                println!(
                    "strings-raw {:.2} ms parent-share {:.2} ms",
                    floor::raw_strings_floor(&words, 2, 5) * 1e3,
                    floor::strings_parent_share(&words, 5) * 1e3
                );
            }
        }
        "floats" => {
            let pool = Pool::new(2)?;
            pool.map(cubes, 0..100)?;
            let vecs: Vec<Vec<f64>> = (0..200)
                .map(|i| (0..50_000).map(|j| (i + j) as f64).collect())
                .collect();
            for _ in 0..reps {
                let input = vecs.clone();
                let t = Instant::now();
                assert_eq!(pool.map(total, input)?.len(), 200);
                println!("floats {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
            }
        }
        _ => {
            eprintln!("one_workload q6|q3|q3parts|map|bulk|pipe|imapu|async|strings|floats [reps]")
        }
    }
    Ok(())
}

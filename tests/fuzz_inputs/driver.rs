//! The driver: regressions, seeds, then mutants for the time budget, each
//! input under `catch_unwind`; panics and slow inputs saved under `target/`.

use super::generic::{havoc, pick, random_bytes, token_soup};
use super::*;

fn budget() -> Duration {
    let secs = std::env::var("REKINDLE_FUZZ_SECS")
        .ok()
        .map(|s| {
            s.trim()
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("REKINDLE_FUZZ_SECS={s:?}: expected seconds"))
        })
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs.max(0.0))
}

fn run_seed() -> u64 {
    match std::env::var("REKINDLE_FUZZ_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("REKINDLE_FUZZ_SEED={s:?}: expected an integer")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

pub(super) fn fuzz_dir(kind: &str, target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(kind)
        .join(target)
}

/// The files of a directory, sorted; none when it does not exist.
pub(super) fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Vec<u8>)> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn save(kind: &str, target: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(kind);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{target}-{:016x}", fnv(input)));
    std::fs::write(&path, input).unwrap();
    path
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[derive(Default)]
struct Stats {
    slow_limit: Duration,
    inputs: u64,
    accepted: u64,
    slow: Vec<PathBuf>,
    slowest: Duration,
}

/// Runs one input; a panic fails the test and names the saved input.
fn run_one(
    target: &str,
    exec: &mut dyn FnMut(&[u8]) -> bool,
    input: &[u8],
    stats: &mut Stats,
    origin: Option<&Path>,
) -> bool {
    let t = Instant::now();
    let r = catch_unwind(AssertUnwindSafe(|| exec(input)));
    let took = t.elapsed();
    stats.inputs += 1;
    stats.slowest = stats.slowest.max(took);
    if took > stats.slow_limit {
        let file = save("fuzz-slow", target, input);
        eprintln!(
            "fuzz {target}: one input took {:.1} s: {}",
            took.as_secs_f64(),
            file.display()
        );
        stats.slow.push(file);
    }
    match r {
        Ok(accepted) => {
            stats.accepted += accepted as u64;
            accepted
        }
        Err(p) => {
            let msg = panic_message(&*p);
            match origin {
                Some(file) => panic!(
                    "fuzz {target}: regression {} panics again: {msg}",
                    file.display()
                ),
                None => {
                    let file = save("fuzz-crashes", target, input);
                    panic!(
                        "fuzz {target}: an input panicked ({msg}) after {} inputs; saved to {} \
                         (fix it, then move it to tests/fuzz/regressions/{target}/)",
                        stats.inputs,
                        file.display()
                    )
                }
            }
        }
    }
}

/// Regressions, seeds, then mutants for the time budget. `structured` makes
/// a structure-aware mutant from the pool (seeds and accepted mutants).
pub(super) fn fuzz(
    target: &str,
    dict: &[&[u8]],
    mut exec: impl FnMut(&[u8]) -> bool,
    mut structured: impl FnMut(&mut Rng, &[Vec<u8>]) -> Vec<u8>,
) {
    let seed = run_seed() ^ fnv(target.as_bytes());
    let mut rng = Rng::new(seed);
    let mut stats = Stats {
        slow_limit: slow(),
        ..Stats::default()
    };
    let start = Instant::now();

    let regressions = files(&fuzz_dir("regressions", target));
    for (path, input) in &regressions {
        run_one(target, &mut exec, input, &mut stats, Some(path));
    }
    let seeds = files(&fuzz_dir("corpus", target));
    assert!(
        !seeds.is_empty(),
        "no seeds in {}",
        fuzz_dir("corpus", target).display()
    );
    let mut pool: Vec<Vec<u8>> = Vec::new();
    for (_, input) in &seeds {
        run_one(target, &mut exec, input, &mut stats, None);
        pool.push(input.clone());
    }
    let fixed = pool.len();

    let deadline = start + budget();
    let (mut mutated, mut arbitrary) = (0u64, 0u64);
    while Instant::now() < deadline {
        let input = match rng.below(16) {
            0 => {
                arbitrary += 1;
                random_bytes(&mut rng)
            }
            1 => {
                mutated += 1;
                token_soup(&mut rng, dict)
            }
            2..=7 => {
                mutated += 1;
                let mut m = pick(&mut rng, &pool).clone();
                havoc(&mut rng, &mut m, &pool, dict);
                m
            }
            _ => {
                mutated += 1;
                let mut m = structured(&mut rng, &pool);
                if rng.below(4) == 0 {
                    havoc(&mut rng, &mut m, &pool, dict);
                }
                m
            }
        };
        if run_one(target, &mut exec, &input, &mut stats, None) {
            if pool.len() < fixed + POOL {
                pool.push(input);
            } else {
                let i = fixed + rng.below(POOL as u64) as usize;
                pool[i] = input;
            }
        }
    }
    println!(
        "fuzz {target}: {} inputs in {:.1} s ({} regressions, {} seeds, {mutated} mutated, \
         {arbitrary} arbitrary; {} accepted), 0 panics, {} slow (slowest {:.1} ms), seed {seed}",
        stats.inputs,
        start.elapsed().as_secs_f64(),
        regressions.len(),
        seeds.len(),
        stats.accepted,
        stats.slow.len(),
        stats.slowest.as_secs_f64() * 1e3,
    );
    for f in &stats.slow {
        println!("fuzz {target}: slow input {}", f.display());
    }
}

//! `floe-fuzz`: mutational fuzzing of Floe's decoders on stable Rust, with a reproducible seed.
//!
//! Each target starts from built-in seeds plus the files of `corpus/<target>/` (captured client
//! traffic), mutates them (`mutate.rs`), and runs the input; an input that reaches an outcome
//! class not seen before joins the pool. A panic is a crash, an input slower than `--hang-ms` a
//! hang; either is saved under `--crashes` and makes the exit status 1. A watchdog ends the
//! process (exit 3, input saved) if one input runs past ten times `--hang-ms`; an abort ends it
//! too, and the same `--seed` replays the run.

mod mutate;
mod seeds;
mod targets;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use rand::Rng;

/// Most inputs kept in a target's pool.
const POOL_MAX: usize = 4096;

#[derive(Parser)]
#[command(about = "Fuzz Floe's decoders (network and stored bytes)")]
struct Args {
    /// A target name, or `all`; `list` prints them.
    target: String,
    /// Inputs to run per target.
    #[arg(long, default_value_t = 100_000)]
    execs: u64,
    /// The run's seed: the same seed and corpus replay the same inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seed inputs, one directory per target.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus"))]
    corpus: PathBuf,
    /// Inputs that once crashed a target (fixed since), run first as seeds, one directory per target.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/regressions"))]
    regressions: PathBuf,
    /// Where crashing and hanging inputs are written.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/crashes"))]
    crashes: PathBuf,
    /// An input slower than this is a hang.
    #[arg(long, default_value_t = 2_000)]
    hang_ms: u64,
    /// Run each corpus file once, unmutated, and fail if any does not decode (`ok`): checks that
    /// captured client traffic is accepted.
    #[arg(long)]
    replay: bool,
}

struct Report {
    execs: u64,
    crashes: u64,
    hangs: u64,
    pool: usize,
    classes: usize,
    elapsed: Duration,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.target == "list" {
        for t in targets::TARGETS {
            println!("{:<18} {}", t.name, t.about);
        }
        return Ok(());
    }
    let names: Vec<&'static str> = match targets::TARGETS.iter().find(|t| t.name == args.target) {
        _ if args.target == "all" => targets::TARGETS.iter().map(|t| t.name).collect(),
        Some(t) => vec![t.name],
        None => anyhow::bail!("no target {}: `floe-fuzz list` names them", args.target),
    };
    if args.replay {
        return replay(&args, &names);
    }
    // Panics are findings, reported once per input by the loop, not printed by the default hook.
    std::panic::set_hook(Box::new(|_| {}));
    let mut failed = false;
    for name in names {
        let r = fuzz(&args, name)?;
        println!(
            "floe-fuzz {name}: {} execs, {} crashes, {} hangs, {:.0} execs/s, pool {}, outcome classes {} (seed {})",
            r.execs,
            r.crashes,
            r.hangs,
            r.execs as f64 / r.elapsed.as_secs_f64().max(1e-9),
            r.pool,
            r.classes,
            args.seed
        );
        failed |= r.crashes > 0 || r.hangs > 0;
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// Runs every corpus file of the targets once; exits 1 if any is refused.
fn replay(args: &Args, names: &[&'static str]) -> anyhow::Result<()> {
    let mut refused = 0;
    for name in names {
        let mut state = targets::State::new()?;
        let inputs = corpus(&args.corpus, name);
        for (i, input) in inputs.iter().enumerate() {
            let class = state.run(name, input);
            if !class.starts_with("ok") {
                refused += 1;
                eprintln!("floe-fuzz {name}: corpus input {i} refused: {class}");
            }
        }
        println!("floe-fuzz {name}: replayed {} corpus inputs, {refused} refused", inputs.len());
    }
    if refused > 0 {
        std::process::exit(1);
    }
    Ok(())
}

fn corpus(dir: &std::path::Path, target: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(target)).map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect()).unwrap_or_default();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn save(dir: &std::path::Path, target: &str, kind: &str, data: &[u8]) -> PathBuf {
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let path = dir.join(format!("{target}-{kind}-{hash:016x}.bin"));
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(&path, data);
    path
}

fn fuzz(args: &Args, name: &'static str) -> anyhow::Result<Report> {
    let mut state = targets::State::new()?;
    let mut pool = corpus(&args.regressions, name);
    pool.extend(seeds::builtin(name));
    pool.extend(corpus(&args.corpus, name));
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    let mut rng = mutate::rng(args.seed);
    let mut classes = HashSet::new();
    let (mut crashes, mut hangs) = (0u64, 0u64);
    let watchdog = Watchdog::start(args.crashes.clone(), name, Duration::from_millis(args.hang_ms.saturating_mul(10)));
    let started = Instant::now();
    for i in 0..args.execs {
        // The seeds run as they are first; then mutants of the pool.
        let input = if (i as usize) < pool.len() {
            pool[i as usize].clone()
        } else {
            let mut d = pool[rng.random_range(0..pool.len())].clone();
            let other = &pool[rng.random_range(0..pool.len())];
            mutate::mutate(&mut rng, &mut d, other);
            d
        };
        watchdog.enter(&input);
        let t = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| state.run(name, &input)));
        let took = t.elapsed();
        watchdog.leave();
        match result {
            Err(panic) => {
                crashes += 1;
                let what = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                let path = save(&args.crashes, name, "crash", &input);
                eprintln!("floe-fuzz {name}: CRASH at input {i}: {what} (saved to {})", path.display());
                state = targets::State::new()?;
            }
            Ok(class) => {
                if took > Duration::from_millis(args.hang_ms) {
                    hangs += 1;
                    let path = save(&args.crashes, name, "hang", &input);
                    eprintln!("floe-fuzz {name}: HANG at input {i}: {took:?} (saved to {})", path.display());
                }
                if classes.insert(class) && pool.len() < POOL_MAX {
                    pool.push(input);
                }
            }
        }
    }
    Ok(Report { execs: args.execs, crashes, hangs, pool: pool.len(), classes: classes.len(), elapsed: started.elapsed() })
}

/// Ends the process if one input runs far too long (an endless loop cannot be interrupted).
struct Watchdog {
    entered_ms: Arc<AtomicU64>,
    current: Arc<Mutex<Vec<u8>>>,
    epoch: Instant,
}

impl Watchdog {
    fn start(dir: PathBuf, name: &'static str, limit: Duration) -> Self {
        let entered_ms = Arc::new(AtomicU64::new(0));
        let current: Arc<Mutex<Vec<u8>>> = Arc::default();
        let epoch = Instant::now();
        let (e, c) = (entered_ms.clone(), current.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(100));
            let at = e.load(Ordering::Acquire);
            if at != 0 && epoch.elapsed().as_millis() as u64 > at + limit.as_millis() as u64 {
                let input = c.lock().map(|g| g.clone()).unwrap_or_default();
                let path = save(&dir, name, "hang", &input);
                eprintln!("floe-fuzz {name}: an input ran past {limit:?}; saved to {}", path.display());
                std::process::exit(3);
            }
        });
        Watchdog { entered_ms, current, epoch }
    }

    fn enter(&self, input: &[u8]) {
        if let Ok(mut c) = self.current.lock() {
            c.clear();
            c.extend_from_slice(input);
        }
        self.entered_ms.store(self.epoch.elapsed().as_millis() as u64 + 1, Ordering::Release);
    }

    fn leave(&self) {
        self.entered_ms.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_harness_finds_a_planted_bug_and_saves_its_input() {
        let dir = std::env::temp_dir().join(format!("floe-fuzz-test-{}", std::process::id()));
        let args = Args {
            target: "planted".into(),
            execs: 200_000,
            seed: 3,
            corpus: dir.join("none"),
            regressions: dir.join("none"),
            crashes: dir.clone(),
            hang_ms: 2_000,
            replay: false,
        };
        let r = fuzz(&args, "planted").expect("runs");
        assert!(r.crashes > 0, "200k mutants of an empty input never held 0xdead");
        let saved: Vec<Vec<u8>> = std::fs::read_dir(&dir).expect("crashes written").filter_map(|e| std::fs::read(e.ok()?.path()).ok()).collect();
        assert!(saved.iter().all(|d| d.windows(2).any(|w| w == [0xde, 0xad])), "what was saved is what crashed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

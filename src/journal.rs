//! The run journal: an append-only file of `[len u32][crc32c u32][json]`
//! records, one per intent and per outcome, written before and after every
//! action. A damaged last record (a write torn by a crash) is dropped on
//! resume, with a warning, so appends continue cleanly; a damaged record
//! with records after it is an error naming its offset, and nothing is cut.
//! `run` syncs every record to disk; a rehearsal (nothing real to protect)
//! only writes them. A write that fails halts the run (see the engine).

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// One journal record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Record {
    /// The run begins: what it restarts.
    Start {
        /// The playbook's name.
        playbook: String,
        /// The plan's fingerprint: a resume must bring the same one.
        fingerprint: String,
        /// Containers in the plan.
        containers: usize,
        /// A run that restarts only what a survey chose: the ids it chose
        /// (a resume cuts the same plan from them, without surveying again).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        only: Option<Vec<String>>,
    },
    /// About to restart `id`; `before` is its start marker before the call.
    Intent {
        /// The container's id.
        id: String,
        /// The wave it belongs to.
        wave: usize,
        /// Attempts before this one (0 for the first).
        attempt: u32,
        /// Its start marker before the call.
        before: String,
    },
    /// A container's attempt ended.
    Outcome {
        /// The container's id.
        id: String,
        /// Whether it passed its gate.
        healthy: bool,
        /// Why it did not, if it did not.
        reason: Option<String>,
    },
    /// A wave passed its gates.
    WavePassed {
        /// The wave's index in the plan.
        wave: usize,
    },
    /// The run ended.
    End {
        /// The run's final state, lowercase (`succeeded`, `halted`, `aborted`).
        state: String,
    },
}

/// Why a journal cannot be created, read or written.
#[derive(Debug, Error)]
pub enum JournalError {
    /// Reading, writing, locking or syncing the file failed.
    #[error("journal {path}: {source}")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The journal holds a run of another playbook or plan.
    #[error("journal {path} belongs to playbook {found:?} (fingerprint {found_fp}), not {want:?} (fingerprint {want_fp}): use another --state-dir or start without --resume")]
    Mismatch {
        /// The journal file.
        path: PathBuf,
        /// The playbook named in the journal.
        found: String,
        /// The fingerprint in the journal.
        found_fp: String,
        /// The playbook of this run.
        want: String,
        /// The fingerprint of this run's plan.
        want_fp: String,
    },
    /// A new run would overwrite a journal that holds one.
    #[error("journal {path} already holds a run of playbook {playbook:?}: pass --resume to continue it, or remove the file to start over")]
    Exists {
        /// The journal file.
        path: PathBuf,
        /// The playbook of the run it holds.
        playbook: String,
    },
    /// Another process holds the journal's lock.
    #[error("journal {path} is in use by another rekindle process (a run or a daemon): let it finish or stop it first")]
    Busy {
        /// The journal file.
        path: PathBuf,
    },
    /// Resuming, but there is no journal.
    #[error("journal {path} does not exist: nothing to resume")]
    Missing {
        /// The journal file.
        path: PathBuf,
    },
    /// The replica refused the record (or could not take it in time).
    #[error("journal {path}: record {seq} did not reach its replica: {source}")]
    Replica {
        /// The journal file.
        path: PathBuf,
        /// The record's number.
        seq: u64,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The replica cannot confirm that this writer may act.
    #[error("journal {path}: its replica does not confirm this writer may act: {source}")]
    Unconfirmed {
        /// The journal file.
        path: PathBuf,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A damaged record with records after it.
    #[error("journal {path}: the record at offset {offset} {what}, and records follow it: the journal is damaged in the middle, not torn at its end; nothing was truncated. Restore it, or move it aside to start over")]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// Byte offset of the damaged record.
        offset: usize,
        /// What is wrong with it (e.g. `fails its checksum`).
        what: String,
    },
}

/// A copy of the journal elsewhere that a record must reach before it
/// counts (the daemon's HA mode replicates to etcd, fenced by its
/// leadership). A record it refuses fails the append, so the engine starts
/// no restart whose intent it does not hold.
pub trait Replica: Send {
    /// Stores record number `seq` (1 for the run's start), its JSON bytes.
    fn replicate(
        &mut self,
        seq: u64,
        record: &[u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;

    /// Whether this writer may act now (a leader whose lease is
    /// confirmed), asked right before a restart's first call to a host;
    /// it may wait (etcd away). By default, yes.
    fn confirm(&mut self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(())
    }
}

/// What a journal says about a run so far.
#[derive(Debug, Default)]
pub struct Replay {
    /// Every whole record, in file order.
    pub records: Vec<Record>,
    /// Containers whose last outcome is healthy.
    pub healthy: HashSet<String>,
    /// Containers with an intent and no outcome after it: in doubt.
    pub in_doubt: HashMap<String, String>,
    /// Attempts made per container id.
    pub attempts: HashMap<String, u32>,
    /// Indexes of the waves that passed.
    pub waves_passed: HashSet<usize>,
    /// Set when the file ended in a torn or corrupt record (bytes dropped).
    pub torn: Option<String>,
    /// The state of the `End` record, if the run ended.
    pub ended: Option<String>,
}

impl Replay {
    /// Whether the journal already holds restarts: a run that continues
    /// (every healthy or in-doubt container was attempted first).
    pub fn continues_a_run(&self) -> bool {
        !self.attempts.is_empty()
    }

    fn apply(&mut self, r: &Record) {
        match r {
            Record::Intent {
                id,
                attempt,
                before,
                ..
            } => {
                self.in_doubt.insert(id.clone(), before.clone());
                self.healthy.remove(id);
                // A journal comes back from disk: a damaged or hand-edited
                // one may say u32::MAX. Saturate; never overflow.
                self.attempts.insert(id.clone(), attempt.saturating_add(1));
            }
            Record::Outcome { id, healthy, .. } => {
                self.in_doubt.remove(id);
                if *healthy {
                    self.healthy.insert(id.clone());
                }
            }
            Record::WavePassed { wave } => {
                self.waves_passed.insert(*wave);
            }
            Record::End { state } => self.ended = Some(state.clone()),
            Record::Start { .. } => {}
        }
    }
}

/// An open journal file, locked by this process.
pub struct Journal {
    path: PathBuf,
    file: File,
    durable: bool,
    /// Records in the file.
    seq: u64,
    replica: Option<Box<dyn Replica>>,
    syncer: std::sync::Arc<Syncer>,
}

/// Makes a journal's records durable for many writers at once (group
/// commit): one `fsync` covers every record written before it, so the
/// restarts of a wave that journal their intents together wait for one
/// sync, not one each.
pub struct Syncer {
    file: Option<File>,
    path: PathBuf,
    /// Records written.
    written: std::sync::atomic::AtomicU64,
    /// Records known synced; held while a sync runs.
    synced: tokio::sync::Mutex<u64>,
}

/// How long a sync waits for more records to cover.
const GROUP_LINGER: std::time::Duration = std::time::Duration::from_millis(2);

impl Syncer {
    fn new(file: &File, path: &Path, durable: bool) -> std::sync::Arc<Syncer> {
        std::sync::Arc::new(Syncer {
            // A second handle on the same file: syncing it syncs the file.
            file: if durable { file.try_clone().ok() } else { None },
            path: path.to_path_buf(),
            written: std::sync::atomic::AtomicU64::new(0),
            synced: tokio::sync::Mutex::new(0),
        })
    }

    /// Returns once record `seq` and every one before it are on disk (at
    /// once for a journal that is not durable). The `fsync` runs on the
    /// blocking pool; writers waiting meanwhile find their records covered
    /// by it.
    pub async fn sync_to(self: std::sync::Arc<Self>, seq: u64) -> Result<(), JournalError> {
        if self.file.is_none() {
            return Ok(());
        }
        let mut synced = self.synced.lock().await;
        if *synced >= seq {
            return Ok(());
        }
        // Let the records of the next moment join this sync: a wave's
        // intents come a few per millisecond, and each sync wakes a thread
        // of the blocking pool.
        tokio::time::sleep(GROUP_LINGER).await;
        let target = self.written.load(std::sync::atomic::Ordering::Acquire);
        let me = self.clone();
        let result = tokio::task::spawn_blocking(move || match &me.file {
            Some(f) => f.sync_data(),
            None => Ok(()),
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        result.map_err(io(&self.path))?;
        *synced = target;
        Ok(())
    }

    /// The blocking form, for writers outside a runtime.
    fn sync_now(&self) -> Result<(), JournalError> {
        if let Some(f) = &self.file {
            f.sync_data().map_err(io(&self.path))?;
        }
        Ok(())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Journal {
    /// Starts a new journal; refuses to overwrite one that holds a run. The
    /// lock is taken before anything is read or truncated: a live run's
    /// journal is never cut by a second process.
    pub fn create(path: &Path, start: Record, durable: bool) -> Result<Journal, JournalError> {
        Journal::create_replicated(path, start, durable, None)
    }

    /// [`Journal::create`], each record replicated (the start first)
    /// before it counts.
    pub fn create_replicated(
        path: &Path,
        start: Record,
        durable: bool,
        replica: Option<Box<dyn Replica>>,
    ) -> Result<Journal, JournalError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(path))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(io(path))?;
        lock(&file, path)?;
        let (replay, _) = read(path)?;
        if let Some(Record::Start { playbook, .. }) = replay.records.first() {
            return Err(JournalError::Exists {
                path: path.to_path_buf(),
                playbook: playbook.clone(),
            });
        }
        // Nothing of a run in it (empty, or not one record whole): start it.
        file.set_len(0).map_err(io(path))?;
        if durable {
            if let Some(dir) = path.parent() {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io(path))?;
            }
        }
        let mut j = Journal {
            path: path.to_path_buf(),
            syncer: Syncer::new(&file, path, durable),
            file,
            durable,
            seq: 0,
            replica,
        };
        j.append(&start)?;
        Ok(j)
    }

    /// A journal whose every write fails (the file opened read-only): for
    /// the engine's tests of a disk that refuses the record.
    #[cfg(test)]
    pub(crate) fn unwritable(path: &Path) -> Journal {
        std::fs::write(path, b"").unwrap();
        let file = File::open(path).unwrap();
        Journal {
            path: path.to_path_buf(),
            syncer: Syncer::new(&file, path, false),
            file,
            durable: false,
            seq: 0,
            replica: None,
        }
    }

    /// Reopens a journal to continue its run: checks it belongs to this
    /// playbook and plan, truncates a torn tail, and returns what it holds.
    pub fn resume(
        path: &Path,
        playbook: &str,
        fingerprint: &str,
        durable: bool,
    ) -> Result<(Journal, Replay), JournalError> {
        if !path.exists() {
            return Err(JournalError::Missing {
                path: path.to_path_buf(),
            });
        }
        // Lock before reading: a live run appends to this file.
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io(path))?;
        lock(&file, path)?;
        let (replay, valid_len) = read(path)?;
        match replay.records.first() {
            Some(Record::Start {
                playbook: p,
                fingerprint: f,
                ..
            }) if p == playbook && f == fingerprint => {}
            Some(Record::Start {
                playbook: p,
                fingerprint: f,
                ..
            }) => {
                return Err(JournalError::Mismatch {
                    path: path.to_path_buf(),
                    found: p.clone(),
                    found_fp: f.clone(),
                    want: playbook.to_string(),
                    want_fp: fingerprint.to_string(),
                })
            }
            _ => {
                return Err(JournalError::Missing {
                    path: path.to_path_buf(),
                })
            }
        }
        file.set_len(valid_len).map_err(io(path))?;
        let mut j = Journal {
            path: path.to_path_buf(),
            syncer: Syncer::new(&file, path, durable),
            file,
            durable,
            seq: replay.records.len() as u64,
            replica: None,
        };
        j.syncer
            .written
            .store(j.seq, std::sync::atomic::Ordering::Release);
        j.file.seek(SeekFrom::End(0)).map_err(io(path))?;
        Ok((j, replay))
    }

    /// Replicates every later record to `replica` (a resumed journal
    /// whose earlier records the replica already holds: the takeover).
    pub fn set_replica(&mut self, replica: Box<dyn Replica>) {
        self.replica = Some(replica);
    }

    /// Appends one record: to the replica first when there is one (a
    /// refusal leaves the file as it was), then to the file; with
    /// `durable`, synced to disk before it returns.
    pub fn append(&mut self, r: &Record) -> Result<(), JournalError> {
        self.append_deferred(r)?;
        if self.durable {
            self.syncer.sync_now()?;
        }
        Ok(())
    }

    /// Appends one record as [`Journal::append`] does but does not wait
    /// for the disk: it is durable once [`Syncer::sync_to`] its sequence
    /// number (returned) has returned, or after any later sync.
    pub fn append_deferred(&mut self, r: &Record) -> Result<u64, JournalError> {
        let payload = serde_json::to_vec(r).expect("records serialize");
        if let Some(replica) = &mut self.replica {
            replica
                .replicate(self.seq + 1, &payload)
                .map_err(|source| JournalError::Replica {
                    path: self.path.clone(),
                    seq: self.seq + 1,
                    source,
                })?;
        }
        let mut buf = Vec::with_capacity(payload.len() + 8);
        frame(&payload, &mut buf);
        self.file.write_all(&buf).map_err(io(&self.path))?;
        self.seq += 1;
        self.syncer
            .written
            .store(self.seq, std::sync::atomic::Ordering::Release);
        Ok(self.seq)
    }

    /// The journal's group commit, to wait for a deferred record.
    pub fn syncer(&self) -> std::sync::Arc<Syncer> {
        self.syncer.clone()
    }

    /// Asks the replica, if any, whether this writer may act now (see
    /// [`Replica::confirm`]).
    pub fn confirm(&mut self) -> Result<(), JournalError> {
        match &mut self.replica {
            Some(r) => r.confirm().map_err(|source| JournalError::Unconfirmed {
                path: self.path.clone(),
                source,
            }),
            None => Ok(()),
        }
    }

    /// Writes a journal from a replica's records (JSON bytes, in order)
    /// at `path`, replacing what is there: the next leader's copy of the
    /// run, to resume from. Written aside and renamed, so a crash leaves
    /// the old file or the whole new one.
    pub fn restore(path: &Path, records: &[Vec<u8>]) -> Result<(), JournalError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(path))?;
        }
        let aside = path.with_extension("restoring");
        let mut buf = Vec::new();
        for payload in records {
            frame(payload, &mut buf);
        }
        let mut f = File::create(&aside).map_err(io(path))?;
        f.write_all(&buf)
            .and_then(|_| f.sync_all())
            .map_err(io(path))?;
        std::fs::rename(&aside, path).map_err(io(path))?;
        Ok(())
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// One record as the file holds it: `[len u32][crc32c u32][json]`.
fn frame(payload: &[u8], buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

/// One process drives a journal at a time (the lock goes with the file).
fn lock(file: &File, path: &Path) -> Result<(), JournalError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(JournalError::Busy {
            path: path.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(JournalError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Reads every valid record; returns the replay and the valid length.
pub fn read(path: &Path) -> Result<(Replay, u64), JournalError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io(path))?;
    let mut replay = Replay::default();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.len() < 8 {
            replay.torn = Some(format!("{} stray bytes at offset {pos}", rest.len()));
            break;
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap());
        if rest.len() < 8 + len {
            replay.torn = Some(format!(
                "record at offset {pos} cut short ({} of {} bytes)",
                rest.len() - 8,
                len
            ));
            break;
        }
        let payload = &rest[8..8 + len];
        let bad = if crc32c::crc32c(payload) != crc {
            Some("fails its checksum")
        } else {
            None
        };
        let record = match bad {
            Some(what) => Err(what),
            None => {
                serde_json::from_slice::<Record>(payload).map_err(|_| "is not a journal record")
            }
        };
        let record = match record {
            Ok(r) => r,
            // The last record, damaged: a write torn by a crash. Dropped.
            Err(what) if pos + 8 + len == bytes.len() => {
                replay.torn = Some(format!("record at offset {pos} {what}"));
                break;
            }
            // Damaged with records after it: not a torn write. Nothing is
            // dropped; the resume stops here.
            Err(what) => {
                return Err(JournalError::Corrupt {
                    path: path.to_path_buf(),
                    offset: pos,
                    what: what.to_string(),
                });
            }
        };
        replay.apply(&record);
        replay.records.push(record);
        pos += 8 + len;
    }
    if let Some(t) = &replay.torn {
        tracing::warn!(journal = %path.display(), "journal ends in a damaged record, ignored: {t}");
    }
    Ok((replay, pos as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> Record {
        Record::Start {
            playbook: "p".into(),
            fingerprint: "f".into(),
            containers: 2,
            only: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deferred_records_are_numbered_on_from_a_resume_and_synced_together() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut j = Journal::create(&path, start(), true).unwrap();
        assert_eq!(
            j.append_deferred(&Record::WavePassed { wave: 0 }).unwrap(),
            2
        );
        drop(j);
        // Resumed: the numbering goes on after the records in the file.
        let (j, replay) = Journal::resume(&path, "p", "f", true).unwrap();
        assert_eq!(replay.records.len(), 2);
        let j = std::sync::Arc::new(std::sync::Mutex::new(j));
        // Writers at once, each waiting for its own record on disk.
        let mut tasks = Vec::new();
        for w in 1..=40usize {
            let j = j.clone();
            tasks.push(tokio::spawn(async move {
                let (seq, syncer) = {
                    let mut j = j.lock().unwrap();
                    let seq = j.append_deferred(&Record::WavePassed { wave: w }).unwrap();
                    (seq, j.syncer())
                };
                syncer.sync_to(seq).await.unwrap();
                seq
            }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap());
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (3..=42).collect::<Vec<u64>>());
        drop(j);
        let (_, replay) = Journal::resume(&path, "p", "f", true).unwrap();
        assert_eq!(replay.records.len(), 42);
        for w in 0..=40 {
            assert!(replay.waves_passed.contains(&w), "wave {w}");
        }
        // Not durable: nothing to wait for.
        let mut k = Journal::create(&dir.path().join("k"), start(), false).unwrap();
        let seq = k.append_deferred(&Record::WavePassed { wave: 0 }).unwrap();
        k.syncer().sync_to(seq).await.unwrap();
    }

    #[test]
    fn a_damaged_record_before_the_last_is_an_error_naming_its_offset_and_nothing_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut j = Journal::create(&path, start(), true).unwrap();
        j.append(&Record::WavePassed { wave: 0 }).unwrap();
        let second = std::fs::metadata(&path).unwrap().len() as usize;
        j.append(&Record::WavePassed { wave: 1 }).unwrap();
        j.append(&Record::WavePassed { wave: 2 }).unwrap();
        drop(j);
        // Flip a byte inside the payload of the third record (wave 1).
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[second + 10] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let e = Journal::resume(&path, "p", "f", true)
            .err()
            .expect("a damaged journal");
        match &e {
            JournalError::Corrupt { offset, .. } => assert_eq!(*offset, second),
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains(&format!("offset {second}")), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing truncated");
        // The same damage in the last record is a torn tail: dropped.
        let mut j = Journal::create(&dir.path().join("k"), start(), true).unwrap();
        j.append(&Record::WavePassed { wave: 0 }).unwrap();
        drop(j);
        let k = dir.path().join("k");
        let mut bytes = std::fs::read(&k).unwrap();
        let n = bytes.len();
        bytes[n - 2] ^= 0xff;
        std::fs::write(&k, &bytes).unwrap();
        let (_, replay) = Journal::resume(&k, "p", "f", true).unwrap();
        assert!(replay.torn.is_some());
        assert!(!replay.waves_passed.contains(&0));
    }

    #[test]
    fn create_takes_the_lock_before_it_touches_a_live_runs_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut live = Journal::create(&path, start(), true).unwrap();
        live.append(&Record::WavePassed { wave: 0 }).unwrap();
        let before = std::fs::read(&path).unwrap();
        // A second process would find it locked, and must not have cut it.
        let second = Journal::create(&path, start(), true);
        assert!(
            matches!(second, Err(JournalError::Busy { .. })),
            "{:?}",
            second.err()
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "the live journal was truncated"
        );
        drop(live);
        // Unlocked, it still holds a run: refused, not overwritten.
        assert!(matches!(
            Journal::create(&path, start(), true),
            Err(JournalError::Exists { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn an_intent_at_the_last_attempt_number_reads_without_overflow() {
        // Found by fuzzing (tests/fuzz/regressions/journal/): `attempt + 1`
        // overflowed on a well-framed record holding u32::MAX.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut j = Journal::create(&path, start(), false).unwrap();
        j.append(&Record::Intent {
            id: "a".into(),
            wave: usize::MAX,
            attempt: u32::MAX,
            before: String::new(),
        })
        .unwrap();
        drop(j);
        let (replay, _) = read(&path).unwrap();
        assert_eq!(replay.attempts["a"], u32::MAX);
    }

    #[test]
    fn replays_intents_and_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut j = Journal::create(&path, start(), true).unwrap();
        j.append(&Record::Intent {
            id: "a".into(),
            wave: 0,
            attempt: 0,
            before: "1".into(),
        })
        .unwrap();
        j.append(&Record::Outcome {
            id: "a".into(),
            healthy: true,
            reason: None,
        })
        .unwrap();
        j.append(&Record::Intent {
            id: "b".into(),
            wave: 0,
            attempt: 0,
            before: "2".into(),
        })
        .unwrap();
        let (r, _) = read(&path).unwrap();
        assert!(r.healthy.contains("a"));
        assert_eq!(r.in_doubt.get("b").map(String::as_str), Some("2"));
        assert!(r.torn.is_none());
    }

    #[test]
    fn a_torn_tail_is_reported_and_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut j = Journal::create(&path, start(), false).unwrap();
        j.append(&Record::Intent {
            id: "a".into(),
            wave: 0,
            attempt: 0,
            before: "1".into(),
        })
        .unwrap();
        drop(j);
        let good = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[40, 0, 0, 0, 1, 2, 3, 4, b'{']).unwrap();
        drop(f);
        let (mut j, r) = Journal::resume(&path, "p", "f", false).unwrap();
        assert!(r.torn.as_deref().unwrap().contains("cut short"));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
        j.append(&Record::WavePassed { wave: 0 }).unwrap();
        let (r, _) = read(&path).unwrap();
        assert!(r.torn.is_none());
        assert!(r.waves_passed.contains(&0));
    }

    #[test]
    fn refuses_another_playbooks_journal_and_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        Journal::create(&path, start(), false).unwrap();
        assert!(matches!(
            Journal::resume(&path, "other", "f", false),
            Err(JournalError::Mismatch { .. })
        ));
        assert!(matches!(
            Journal::create(&path, start(), false),
            Err(JournalError::Exists { .. })
        ));
    }
}

//! `serve`'s live ladder: the trace rendered as it grows by one task, written by another, and spilled to a file while nobody reads stdout, so no element ever waits on the printer and no line is lost.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::ladder::LiveLadder;
use crate::topology::Topology;
use crate::trace::Trace;

/// How many events the renderer takes per turn of the trace's lock.
const RENDER_BATCH: usize = 512;
/// How much rendered text waits in memory before the rest goes to the spill file.
pub(super) const SPOOL_MEMORY: usize = 4 << 20;
/// How often the renderer looks for new events once it has rendered them all.
const IDLE_POLL: std::time::Duration = std::time::Duration::from_millis(20);
/// How much the writer hands stdout at once.
const WRITE_CHUNK: usize = 64 << 10;

/// The printer's renderer thread and writer task; dropping it (or `abort`) ends both.
pub(super) struct Printer {
    stop: Arc<AtomicBool>,
    render: Option<std::thread::JoinHandle<()>>,
    write: JoinHandle<()>,
    /// The trace index the renderer has taken everything below (what tests wait on).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) rendered: watch::Receiver<usize>,
}

impl Printer {
    pub(super) fn abort(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.write.abort();
        // Ends after its batch or its idle poll: milliseconds.
        if let Some(render) = self.render.take() {
            let _ = render.join();
        }
    }
}

impl Drop for Printer {
    fn drop(&mut self) {
        self.abort();
    }
}

/// Starts rendering `trace` from its start into `out`. The renderer marks what it took as
/// read (`Trace::forget_before`), so a bounded trace keeps only its bound in memory; lines
/// stdout has not taken wait in memory up to `memory` bytes, then in the file at `spill`.
pub(super) fn spawn<W>(trace: Trace, topology: Arc<Topology>, mut out: W, spill: PathBuf, memory: usize) -> Printer
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let spool = Arc::new(Mutex::new(Spool::new(spill, memory)));
    let ready = Arc::new(Notify::new());
    let (progress, rendered) = watch::channel(0);
    let stop = Arc::new(AtomicBool::new(false));
    let render = {
        let (spool, ready, stop) = (spool.clone(), ready.clone(), stop.clone());
        std::thread::Builder::new()
            .name("ladder".into())
            .spawn(move || {
                yield_to_the_elements();
                let mut ladder = LiveLadder::default();
                let mut reader = trace.reader(0);
                while !stop.load(Ordering::Relaxed) {
                    let batch = reader.take(RENDER_BATCH);
                    if batch.is_empty() {
                        // Polled, not woken per event: a wake-up per message cost more than
                        // rendering it, and a person reading the ladder cannot tell 20 ms.
                        std::thread::sleep(IDLE_POLL);
                        continue;
                    }
                    let mut text = String::new();
                    for event in &batch {
                        if let Some(line) = ladder.line(event, &topology) {
                            // Milliseconds since the lab started, so a person can tell a timer from a burst.
                            let _ = writeln!(text, "+{}ms {line}", event.at.as_millis());
                        }
                    }
                    drop(batch);
                    trace.forget_before(reader.position());
                    if !text.is_empty() {
                        let pushed = spool.lock().unwrap_or_else(|e| e.into_inner()).push(text.into_bytes());
                        if let Err(e) = pushed {
                            tracing::error!("serve: the ladder's spill file failed: {e}; the live ladder stops");
                            return;
                        }
                        ready.notify_one();
                    }
                    progress.send_replace(reader.position());
                }
            })
            .expect("a thread for the ladder")
    };
    let write = tokio::spawn(async move {
        loop {
            let chunk = spool.lock().unwrap_or_else(|e| e.into_inner()).take(WRITE_CHUNK);
            let chunk = match chunk {
                Ok(chunk) if chunk.is_empty() => {
                    ready.notified().await;
                    continue;
                }
                Ok(chunk) => chunk,
                Err(e) => {
                    tracing::error!("serve: reading the ladder's spill file failed: {e}");
                    return;
                }
            };
            // A reader that stops reading holds only this task, which `quit` aborts.
            if out.write_all(&chunk).await.is_err() || out.flush().await.is_err() {
                return;
            }
        }
    });
    Printer { stop, render: Some(render), write, rendered }
}

/// The renderer's thread runs at a lower priority (nice 10) than the elements': under a load
/// test the ladder lags and catches up when the load ends (nothing is lost: what it has not
/// rendered is still in the trace), while the elements answer at full speed. Rendering took a
/// sixth of `serve`'s CPU at 20k REGISTER/s; at equal priority it was taken from the answers.
#[allow(unsafe_code)]
fn yield_to_the_elements() {
    // SAFETY: gettid and setpriority have no memory-safety preconditions; a thread's id is
    // its PRIO_PROCESS target on Linux, so only this thread is lowered.
    let lowered = unsafe {
        let thread = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, 10)
    };
    if lowered != 0 {
        tracing::debug!("serve: cannot lower the ladder's priority: {}", io::Error::last_os_error());
    }
}

/// Rendered text not yet written: blocks in memory, then (once `memory` is full) a file, read
/// back in order; the file is emptied whenever the writer catches up.
struct Spool {
    memory: VecDeque<Vec<u8>>,
    in_memory: usize,
    limit: usize,
    path: PathBuf,
    spill: Option<Spill>,
}

struct Spill {
    file: File,
    read: u64,
    written: u64,
}

impl Spool {
    fn new(path: PathBuf, limit: usize) -> Spool {
        Spool { memory: VecDeque::new(), in_memory: 0, limit, path, spill: None }
    }

    fn push(&mut self, block: Vec<u8>) -> io::Result<()> {
        if self.spill.is_none() && self.in_memory + block.len() <= self.limit {
            self.in_memory += block.len();
            self.memory.push_back(block);
            return Ok(());
        }
        let spill = match &mut self.spill {
            Some(spill) => spill,
            None => {
                let file = File::options().read(true).write(true).create(true).truncate(true).open(&self.path)?;
                tracing::info!("serve: stdout is not keeping up; the ladder waits in {}", self.path.display());
                self.spill.insert(Spill { file, read: 0, written: 0 })
            }
        };
        spill.file.write_all_at(&block, spill.written)?;
        spill.written += block.len() as u64;
        Ok(())
    }

    /// The oldest text not yet taken, at most about `max` bytes; empty when there is none.
    fn take(&mut self, max: usize) -> io::Result<Vec<u8>> {
        if let Some(block) = self.memory.pop_front() {
            self.in_memory -= block.len();
            return Ok(block);
        }
        let Some(spill) = &mut self.spill else { return Ok(Vec::new()) };
        let n = (spill.written - spill.read).min(max as u64) as usize;
        let mut buffer = vec![0; n];
        spill.file.read_exact_at(&mut buffer, spill.read)?;
        spill.read += n as u64;
        if spill.read == spill.written {
            self.spill = None;
            let _ = std::fs::remove_file(&self.path);
        }
        Ok(buffer)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use tokio::io::AsyncBufReadExt;

    use super::*;
    use crate::trace::tests::action;

    /// Issue 13: a stdout nobody reads froze every element. Now recording goes on, the renderer
    /// takes everything (so a bounded trace stays bounded), the text waits in the spill file,
    /// and once stdout is read again every line arrives, in order.
    #[tokio::test]
    async fn a_stdout_nobody_reads_blocks_no_element_and_loses_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let topology = Arc::new(Topology::new(Ipv4Addr::new(127, 100, 0, 0), "lab.test"));
        let trace = Trace::new();
        trace.forget_read_after(16);
        let (out, input) = tokio::io::duplex(64);
        let spill = dir.path().join("ladder.spool");
        let mut printer = spawn(trace.clone(), topology, out, spill.clone(), 1024);
        let events = 5000;
        for n in 0..events {
            action(&trace, n);
            if n % 500 == 0 {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(trace.len(), events, "every record returned");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        tokio::time::timeout_at(deadline, printer.rendered.wait_for(|&n| n == events))
            .await
            .expect("the renderer takes everything although nobody reads")
            .unwrap();
        assert!(trace.first_kept() >= events - 16, "the bounded trace forgot what was rendered");
        assert!(spill.exists(), "the unread text waits in the spill file");
        let mut lines = tokio::io::BufReader::new(input).lines();
        for n in 0..events {
            let line = tokio::time::timeout_at(deadline, lines.next_line()).await.expect("in time").unwrap().unwrap();
            assert!(line.ends_with(&format!("event {n} ==")), "line {n}: {line}");
        }
        printer.abort();
    }
}

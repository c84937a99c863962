//! The monitor's clients, each with its own queue of frames, so that one
//! client that stops reading (a suspended `capsa attach`, a full pipe
//! behind it) cannot stop the container's output, its log, or the others.
//!
//! Two kinds of client, as docker treats them:
//! - the command that started the container attached (`capsa run`,
//!   `start -a`) is *primary*: when its queue is full the monitor stops
//!   reading the container's output, so the container waits for its
//!   reader rather than losing output (a pipe's backpressure);
//! - a client that attached later is *secondary*: when its queue is full
//!   it is dropped, and the container and everyone else go on.

use crate::protocol::{Frame, FromMonitor};
use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// The most bytes queued for one client: past it, a primary client holds
/// back the container's output and a secondary one is dropped.
const LIMIT: usize = 1 << 20;
/// What a queued frame costs beyond its bytes (its allocation and queue
/// slot): a container writing a byte at a time must not get past the
/// limit by many small frames.
const FRAME_COST: usize = 64;
/// The most clients one monitor serves; more are refused at once.
const MAX_CLIENTS: usize = 64;

pub(super) struct Client {
    /// Unique within the monitor: a client's place in the list moves.
    pub id: u64,
    pub fd: OwnedFd,
    queue: VecDeque<Vec<u8>>,
    queued: usize,
    primary: bool,
}

impl Client {
    fn new(id: u64, fd: OwnedFd, primary: bool) -> Client {
        // Non-blocking: a send that would wait queues instead.
        let _ = rustix::io::ioctl_fionbio(&fd, true);
        Client {
            id,
            fd,
            queue: VecDeque::new(),
            queued: 0,
            primary,
        }
    }

    /// Send what is queued until the socket is full. `Err` when the
    /// client is gone.
    fn flush(&mut self) -> Result<(), rustix::io::Errno> {
        while let Some(frame) = self.queue.front() {
            match rustix::net::send(&self.fd, frame, rustix::net::SendFlags::NOSIGNAL) {
                Ok(_) => {
                    self.queued -= frame.len() + FRAME_COST;
                    self.queue.pop_front();
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Whether frames wait to be sent (poll for POLLOUT).
    pub fn pending(&self) -> bool {
        !self.queue.is_empty()
    }
}

/// Every client of one monitor.
pub(super) struct Clients {
    pub list: Vec<Client>,
    next: u64,
}

impl Clients {
    /// The clients connected before the container started: primary.
    pub fn new(primary: Vec<OwnedFd>) -> Clients {
        let list: Vec<Client> = (0u64..)
            .zip(primary)
            .map(|(id, fd)| Client::new(id, fd, true))
            .collect();
        Clients {
            next: list.len() as u64,
            list,
        }
    }

    /// A client that attached while the container runs: secondary.
    pub fn add(&mut self, fd: OwnedFd) {
        if self.list.len() >= MAX_CLIENTS {
            return;
        }
        self.list.push(Client::new(self.next, fd, false));
        self.next += 1;
    }

    /// Queue `m` for every client and send what fits now. A secondary
    /// client whose queue overflows is dropped.
    pub fn broadcast(&mut self, m: &FromMonitor) {
        let frame = m.encode();
        let cost = frame.len() + FRAME_COST;
        self.list.retain_mut(|c| {
            if !c.primary && c.queued + cost > LIMIT {
                return false;
            }
            c.queued += cost;
            c.queue.push_back(frame.clone());
            c.flush().is_ok()
        });
    }

    /// Send what is queued to every client whose socket has room.
    pub fn flush(&mut self) {
        self.list.retain_mut(|c| c.flush().is_ok());
    }

    /// A primary client has a full queue: stop reading the container's
    /// output until it drains.
    pub fn backlogged(&self) -> bool {
        self.list.iter().any(|c| c.primary && c.queued >= LIMIT)
    }

    /// Send everything left. A primary client gets all of its output
    /// however long it takes to read it, as long as it is connected; a
    /// secondary one gets `grace` to take its share, then is left behind.
    pub fn finish(mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        loop {
            if Instant::now() >= deadline {
                self.list.retain(|c| c.primary);
            }
            self.list.retain(Client::pending);
            if self.list.is_empty() {
                return;
            }
            let fds: Vec<BorrowedFd<'_>> = self.list.iter().map(|c| c.fd.as_fd()).collect();
            let flags = vec![rustix::event::PollFlags::OUT; fds.len()];
            // (A client that hung up fails its next send and goes.)
            crate::protocol::poll(&fds, &flags, 100);
            self.flush();
        }
    }
}

//! Datagrams waiting to leave one UDP socket, and how they are grouped into sends.
//!
//! The egress loop queues every datagram of a frame here, and the packets of one frame to one
//! viewer are sent together: a run of datagrams to the same address, all the same size except
//! possibly a shorter last one, is one UDP GSO send (one trip through the kernel's send path
//! instead of one per packet). No IO here; `socket.rs` owns the socket.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

/// A sent queue is kept for reuse only up to this size: an ordinary frame's, not a
/// keyframe's or a burst's, which would otherwise stay allocated for every viewer.
pub const RETAINED_BYTES: usize = 16 * 1024;
/// Largest GSO send: every segment together must fit one IP packet's 16-bit length.
pub const MAX_RUN_BYTES: usize = 65_000;

/// Where a datagram goes and how; datagrams may share a send only if these are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub destination: SocketAddr,
    pub source: Option<IpAddr>,
    /// The two ECN bits, if set.
    pub ecn: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Queued {
    route: Route,
    bytes: Range<usize>,
}

/// The datagrams one socket has accepted and not yet sent, in order.
#[derive(Debug, Default)]
pub struct SendQueue {
    bytes: Vec<u8>,
    datagrams: Vec<Queued>,
}

/// Datagrams sent as one: `segment_size` is `None` for a single datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run<'a> {
    pub route: Route,
    pub contents: &'a [u8],
    pub segment_size: Option<usize>,
}

impl SendQueue {
    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }

    /// Queues one datagram.
    pub fn push(&mut self, route: Route, datagram: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(datagram);
        self.datagrams.push(Queued {
            route,
            bytes: start..self.bytes.len(),
        });
    }

    /// Empties the queue, keeping its allocations.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.datagrams.clear();
    }

    /// Whether the queue's allocation is small enough to keep for reuse.
    pub fn worth_keeping(&self) -> bool {
        self.bytes.capacity() <= RETAINED_BYTES
    }

    /// The queue as sends, in order. `max_segments` is how many datagrams the socket can
    /// send at once (1 without GSO).
    pub fn runs(&self, max_segments: usize) -> Runs<'_> {
        Runs {
            queue: self,
            next: 0,
            max_segments: max_segments.max(1),
        }
    }
}

/// Iterator over a queue's sends; see [`SendQueue::runs`].
pub struct Runs<'a> {
    queue: &'a SendQueue,
    next: usize,
    max_segments: usize,
}

impl<'a> Iterator for Runs<'a> {
    type Item = Run<'a>;

    fn next(&mut self) -> Option<Run<'a>> {
        let datagrams = &self.queue.datagrams;
        let first = datagrams.get(self.next)?;
        let segment = first.bytes.len();
        let mut end = self.next + 1;
        let mut total = segment;
        // A zero-length datagram cannot be a segment: it goes alone.
        while segment > 0 && end - self.next < self.max_segments {
            let Some(candidate) = datagrams.get(end) else {
                break;
            };
            let len = candidate.bytes.len();
            if candidate.route != first.route
                || len == 0
                || len > segment
                || total + len > MAX_RUN_BYTES
            {
                break;
            }
            total += len;
            end += 1;
            // Only the last segment may be shorter.
            if len < segment {
                break;
            }
        }
        let count = end - self.next;
        let bytes = first.bytes.start..datagrams[end - 1].bytes.end;
        self.next = end;
        Some(Run {
            route: first.route,
            contents: &self.queue.bytes[bytes],
            segment_size: (count > 1).then_some(segment),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(port: u16) -> Route {
        Route {
            destination: SocketAddr::from(([127, 0, 0, 1], port)),
            source: None,
            ecn: None,
        }
    }

    fn runs(queue: &SendQueue, max_segments: usize) -> Vec<(u16, usize, Option<usize>)> {
        queue
            .runs(max_segments)
            .map(|run| {
                (
                    run.route.destination.port(),
                    run.contents.len(),
                    run.segment_size,
                )
            })
            .collect()
    }

    #[test]
    fn a_frames_packets_to_one_viewer_are_one_send() {
        let mut queue = SendQueue::default();
        for _ in 0..8 {
            queue.push(route(1), &[7; 1200]);
        }
        queue.push(route(1), &[7; 300]);
        assert_eq!(runs(&queue, 64), vec![(1, 8 * 1200 + 300, Some(1200))]);
    }

    #[test]
    fn a_shorter_datagram_ends_its_run() {
        let mut queue = SendQueue::default();
        queue.push(route(1), &[1; 100]);
        queue.push(route(1), &[2; 1200]);
        queue.push(route(1), &[3; 1200]);
        queue.push(route(1), &[4; 50]);
        queue.push(route(1), &[5; 50]);
        assert_eq!(
            runs(&queue, 64),
            vec![(1, 100, None), (1, 2450, Some(1200)), (1, 50, None)]
        );
    }

    #[test]
    fn runs_keep_order_and_contents() {
        let mut queue = SendQueue::default();
        queue.push(route(1), &[1, 1]);
        queue.push(route(1), &[2, 2]);
        queue.push(route(1), &[3]);
        let run = queue.runs(64).next().unwrap();
        assert_eq!(run.contents, &[1, 1, 2, 2, 3]);
        assert_eq!(run.segment_size, Some(2));
    }

    #[test]
    fn another_address_starts_a_new_run() {
        let mut queue = SendQueue::default();
        queue.push(route(1), &[0; 500]);
        queue.push(route(2), &[0; 500]);
        queue.push(route(2), &[0; 500]);
        queue.push(route(1), &[0; 500]);
        assert_eq!(
            runs(&queue, 64),
            vec![(1, 500, None), (2, 1000, Some(500)), (1, 500, None)]
        );
    }

    #[test]
    fn ecn_or_source_differences_start_a_new_run() {
        let mut queue = SendQueue::default();
        let marked = Route {
            ecn: Some(2),
            ..route(1)
        };
        let sourced = Route {
            source: Some(IpAddr::from([10, 0, 0, 1])),
            ..route(1)
        };
        queue.push(route(1), &[0; 10]);
        queue.push(marked, &[0; 10]);
        queue.push(sourced, &[0; 10]);
        assert_eq!(runs(&queue, 64).len(), 3);
    }

    #[test]
    fn without_gso_every_datagram_is_its_own_send() {
        let mut queue = SendQueue::default();
        for _ in 0..3 {
            queue.push(route(1), &[0; 1200]);
        }
        assert_eq!(runs(&queue, 1), vec![(1, 1200, None); 3]);
    }

    #[test]
    fn runs_stop_at_the_segment_limit_and_the_size_limit() {
        let mut queue = SendQueue::default();
        for _ in 0..5 {
            queue.push(route(1), &[0; 1000]);
        }
        assert_eq!(
            runs(&queue, 2),
            vec![
                (1, 2000, Some(1000)),
                (1, 2000, Some(1000)),
                (1, 1000, None)
            ]
        );

        let mut queue = SendQueue::default();
        for _ in 0..60 {
            queue.push(route(1), &[0; 1200]);
        }
        let sizes: Vec<usize> = queue.runs(64).map(|run| run.contents.len()).collect();
        assert!(sizes.iter().all(|&size| size <= MAX_RUN_BYTES), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 60 * 1200);
        assert_eq!(sizes.len(), 2);
    }

    #[test]
    fn empty_datagrams_go_alone() {
        let mut queue = SendQueue::default();
        queue.push(route(1), &[]);
        queue.push(route(1), &[]);
        queue.push(route(1), &[0; 10]);
        assert_eq!(
            runs(&queue, 64),
            vec![(1, 0, None), (1, 0, None), (1, 10, None)]
        );
    }

    #[test]
    fn only_a_small_allocation_is_worth_keeping() {
        let mut queue = SendQueue::default();
        queue.push(route(1), &[0; 1200]);
        queue.clear();
        assert!(queue.worth_keeping());
        queue.push(route(1), &vec![0; RETAINED_BYTES + 1]);
        queue.clear();
        assert!(!queue.worth_keeping());
    }
}

//! All viewer sessions, owned by one task. HTTP handlers talk to it through typed messages,
//! so no lock is held across an await and there is one source of truth for who is watching.

use crate::egress::worker::EgressLoop;
use crate::fanout::Hubs;
use crate::webrtc::api::PeerSettings;
use crate::webrtc::session::{ViewerSession, ViewerStatus, ViewerStream};
use crate::webrtc::totals::Totals;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How long a removed session may take to release everything before we stop waiting.
const SESSION_END_TIMEOUT: Duration = Duration::from_secs(3);

enum Command {
    Insert {
        session: Arc<ViewerSession>,
        stream: ViewerStream,
    },
    Remove {
        id: String,
        reply: oneshot::Sender<Option<JoinHandle<()>>>,
    },
    Get {
        id: String,
        reply: oneshot::Sender<Option<Arc<ViewerSession>>>,
    },
    List {
        reply: oneshot::Sender<Vec<Arc<ViewerSession>>>,
    },
    Ended {
        id: String,
    },
    CloseAll {
        reply: oneshot::Sender<Vec<JoinHandle<()>>>,
    },
}

#[derive(Clone)]
pub struct SessionRegistry {
    tx: mpsc::UnboundedSender<Command>,
    totals: Arc<Totals>,
    /// The loop new viewers join.
    egress: EgressLoop,
}

struct Entry {
    session: Arc<ViewerSession>,
    task: JoinHandle<()>,
}

impl SessionRegistry {
    /// Starts the task that owns the sessions. It ends when every handle is dropped.
    /// Binds the egress loop's sockets for `settings` and starts it; an error says which
    /// address could not be bound.
    pub fn start(
        hubs: Hubs,
        connect_timeout: Duration,
        settings: &PeerSettings,
    ) -> Result<SessionRegistry, String> {
        let (tx, rx) = mpsc::unbounded_channel();
        let ended = tx.downgrade();
        let totals = Arc::new(Totals::default());
        let egress =
            crate::egress::start_loop(settings, hubs, connect_timeout, Arc::clone(&totals))?;
        tokio::spawn(own_sessions(rx, ended, Arc::clone(&totals)));
        Ok(SessionRegistry { tx, totals, egress })
    }

    /// The egress loop viewers join.
    pub fn egress(&self) -> &EgressLoop {
        &self.egress
    }

    /// Counters over every session so far.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Takes a negotiated session and starts streaming to it.
    pub fn insert(&self, session: Arc<ViewerSession>, stream: ViewerStream) {
        let _ = self.tx.send(Command::Insert { session, stream });
    }

    /// Forgets a session and waits (bounded) until it has released everything.
    /// Returns false when no such session exists.
    pub async fn remove(&self, id: &str) -> bool {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Command::Remove {
            id: id.to_owned(),
            reply,
        });
        match rx.await.ok().flatten() {
            Some(task) => {
                let _ = tokio::time::timeout(SESSION_END_TIMEOUT, task).await;
                true
            }
            None => false,
        }
    }

    pub async fn get(&self, id: &str) -> Option<Arc<ViewerSession>> {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Command::Get {
            id: id.to_owned(),
            reply,
        });
        rx.await.ok().flatten()
    }

    pub async fn list(&self) -> Vec<ViewerStatus> {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Command::List { reply });
        let sessions = rx.await.unwrap_or_default();
        sessions.iter().map(|s| s.status()).collect()
    }

    /// Sessions open now, and how many of them have not connected yet.
    pub async fn counts(&self) -> (usize, usize) {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Command::List { reply });
        let sessions = rx.await.unwrap_or_default();
        let connecting = sessions.iter().filter(|s| s.is_connecting()).count();
        (sessions.len(), connecting)
    }

    /// Closes every session (shutdown), waiting at most `deadline` for them to finish.
    pub async fn close_all(&self, deadline: Duration) {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Command::CloseAll { reply });
        let tasks = rx.await.unwrap_or_default();
        let _ = tokio::time::timeout(deadline, futures_join_all(tasks)).await;
    }
}

async fn futures_join_all(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

async fn own_sessions(
    mut rx: mpsc::UnboundedReceiver<Command>,
    ended: mpsc::WeakUnboundedSender<Command>,
    totals: Arc<Totals>,
) {
    let mut sessions: HashMap<String, Entry> = HashMap::new();
    while let Some(command) = rx.recv().await {
        match command {
            Command::Insert { session, stream } => {
                let id = session.id.clone();
                let ended = ended.clone();
                let run = Arc::clone(&session).run(stream);
                let task_id = id.clone();
                Totals::add(&totals.joins, 1);
                let leaves = Arc::clone(&totals);
                let task = tokio::spawn(async move {
                    run.await;
                    Totals::add(&leaves.leaves, 1);
                    if let Some(tx) = ended.upgrade() {
                        let _ = tx.send(Command::Ended { id: task_id });
                    }
                });
                sessions.insert(id, Entry { session, task });
            }
            Command::Remove { id, reply } => {
                let task = sessions.remove(&id).map(|entry| {
                    entry.session.close();
                    entry.task
                });
                let _ = reply.send(task);
            }
            Command::Get { id, reply } => {
                let _ = reply.send(sessions.get(&id).map(|e| Arc::clone(&e.session)));
            }
            Command::List { reply } => {
                let _ = reply.send(sessions.values().map(|e| Arc::clone(&e.session)).collect());
            }
            Command::Ended { id } => {
                sessions.remove(&id);
            }
            Command::CloseAll { reply } => {
                let tasks = sessions
                    .drain()
                    .map(|(_, entry)| {
                        entry.session.close();
                        entry.task
                    })
                    .collect();
                let _ = reply.send(tasks);
            }
        }
    }
}

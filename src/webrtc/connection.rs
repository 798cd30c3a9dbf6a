//! Where a viewer's connection stands, whichever path serves it.

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// Answered; ICE and DTLS have not finished.
    #[default]
    Connecting,
    Connected,
    /// ICE saw no traffic for a while; it may come back.
    Disconnected,
    Failed,
    Closed,
}

impl Connection {
    pub fn as_str(self) -> &'static str {
        match self {
            Connection::Connecting => "connecting",
            Connection::Connected => "connected",
            Connection::Disconnected => "disconnected",
            Connection::Failed => "failed",
            Connection::Closed => "closed",
        }
    }

    /// The connection is over and its viewer can be forgotten.
    pub fn is_over(self) -> bool {
        matches!(self, Connection::Failed | Connection::Closed)
    }
}

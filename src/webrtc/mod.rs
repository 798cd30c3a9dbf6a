//! The WebRTC parts every connection shares: codecs and interceptors (`api`), what a
//! viewer's offer asks for, ICE servers and SDP fragments, and the viewer sessions with the
//! registry that owns them. Viewers' media itself leaves through `egress/`.

pub mod api;
pub(crate) mod connection;
pub mod feedback;
pub(crate) mod ice_servers;
pub mod offer;
pub(crate) mod peer_connection;
pub(crate) mod registry;
pub mod repeat_resends;
pub mod sdpfrag;
pub(crate) mod session;
pub(crate) mod totals;

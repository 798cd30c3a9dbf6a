//! One receive-only WebRTC PeerConnection per viewer, and the registry that owns them.

pub mod api;
pub mod feedback;
pub mod ice_servers;
pub mod offer;
pub mod ports;
pub mod registry;
pub mod sdpfrag;
pub mod session;
pub mod totals;

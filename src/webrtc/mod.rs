//! One receive-only WebRTC PeerConnection per viewer, and the registry that owns them.

pub mod api;
pub mod feedback;
pub mod offer;
pub mod registry;
pub mod sdpfrag;
pub mod session;
pub mod totals;

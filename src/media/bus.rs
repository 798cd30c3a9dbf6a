//! A pipeline's bus as an async stream of the few things fieldcast acts on.

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq)]
pub enum BusEvent {
    /// An element failed; the pipeline must be rebuilt.
    Error(String),
    /// The source ended (a file, or `num-buffers`); live sources never do this.
    EndOfStream,
    Warning(String),
    /// The whole pipeline reached PLAYING.
    Playing,
    /// The sound's loudness over the last interval: RMS in dBFS, loudest channel.
    AudioLevel(f64),
}

pub type BusEvents = mpsc::UnboundedReceiver<BusEvent>;

/// Forwards `bus`'s messages, as they are posted, to the returned receiver. Call [`unwatch`]
/// before dropping the pipeline.
pub fn watch(bus: &gst::Bus) -> BusEvents {
    let (tx, rx) = mpsc::unbounded_channel();
    bus.set_sync_handler(move |_, message| {
        if let Some(event) = classify(message) {
            let _ = tx.send(event);
        }
        gst::BusSyncReply::Drop
    });
    rx
}

pub fn unwatch(bus: &gst::Bus) {
    bus.unset_sync_handler();
}

/// The event a message stands for, if fieldcast cares about it.
pub fn classify(message: &gst::Message) -> Option<BusEvent> {
    use gst::MessageView;
    let source = message.src().map(|s| s.path_string().to_string());
    let describe = |error: &glib::Error, debug: Option<glib::GString>| {
        let mut text = format!("{}: {}", source.as_deref().unwrap_or("pipeline"), error);
        if let Some(debug) = debug {
            text.push_str(&format!(" ({debug})"));
        }
        text
    };
    match message.view() {
        MessageView::Error(e) => Some(BusEvent::Error(describe(&e.error(), e.debug()))),
        MessageView::Warning(w) => Some(BusEvent::Warning(describe(&w.error(), w.debug()))),
        MessageView::Eos(_) => Some(BusEvent::EndOfStream),
        MessageView::Element(e) => {
            let structure = e.structure()?;
            if structure.name() != "level" {
                return None;
            }
            let rms = structure.get::<glib::ValueArray>("rms").ok()?;
            rms.iter()
                .filter_map(|v| v.get::<f64>().ok())
                .reduce(f64::max)
                .map(BusEvent::AudioLevel)
        }
        MessageView::StateChanged(s)
            if s.current() == gst::State::Playing
                && message.src().is_some_and(|src| src.parent().is_none()) =>
        {
            Some(BusEvent::Playing)
        }
        _ => None,
    }
}

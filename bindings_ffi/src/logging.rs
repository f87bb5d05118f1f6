//! The library's logs, delivered to the app's own logger.
//!
//! The library logs through `tracing`. A phone app wants those lines in
//! logcat or the unified log, not on a stderr nobody reads, so
//! [`set_logger`] installs a `tracing` subscriber that formats each event
//! (its message, then its other fields as `key=value`) and hands it to a
//! foreign [`FfiLogger`]. The filter uses `tracing`'s directive syntax
//! (`info`, `xmtp_core=debug,warn`).
//!
//! The `tracing` subscriber is global and can be installed only once per
//! process, so it is installed on the first call and then only re-pointed:
//! a later `set_logger` swaps the logger and reloads the filter, and
//! [`clear_logger`] detaches the app's logger (an app or a test can stop
//! callbacks before it shuts down). Secrets never reach a log line: the types
//! that hold them have no `Debug` that prints them.

use std::{
    fmt::Write as _,
    sync::{Arc, OnceLock, RwLock},
};

use tracing::{
    field::{Field, Visit},
    Event, Level, Subscriber,
};
use tracing_subscriber::{
    layer::{Context, SubscriberExt},
    reload,
    util::SubscriberInitExt,
    EnvFilter, Layer, Registry,
};

use crate::error::{FfiCallbackError, FfiError};

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum FfiLogLevel {
    /// Something failed.
    Error,
    /// Something is wrong but the library goes on.
    Warn,
    /// A notable step (client ready, key rotated...).
    Info,
    /// Detail for debugging.
    Debug,
    /// Every step.
    Trace,
}

impl From<Level> for FfiLogLevel {
    fn from(level: Level) -> Self {
        match level {
            Level::ERROR => Self::Error,
            Level::WARN => Self::Warn,
            Level::INFO => Self::Info,
            Level::DEBUG => Self::Debug,
            _ => Self::Trace,
        }
    }
}

/// Receives the library's log lines; implemented by the app (for example
/// with `android.util.Log` or `os.Logger`). Called on library threads; must
/// not block and must not call back into the library.
#[uniffi::export(foreign)]
pub trait FfiLogger: Send + Sync {
    /// One log line: its level, its target (the Rust module) and its text.
    /// A failure is ignored (there is nowhere left to report it).
    fn log(
        &self,
        level: FfiLogLevel,
        target: String,
        message: String,
    ) -> Result<(), FfiCallbackError>;
}

/// The logger events go to; `None` when cleared.
type Slot = RwLock<Option<Arc<dyn FfiLogger>>>;

/// The installed subscriber's logger slot and filter handle.
struct Installed {
    slot: Arc<Slot>,
    filter: reload::Handle<EnvFilter, Registry>,
}

static INSTALLED: OnceLock<Result<Installed, String>> = OnceLock::new();

fn install(filter: EnvFilter) -> &'static Result<Installed, String> {
    INSTALLED.get_or_init(|| {
        let slot: Arc<Slot> = Arc::new(RwLock::new(None));
        let (filter, handle) = reload::Layer::new(filter);
        tracing_subscriber::registry()
            .with(filter)
            .with(ForeignLayer { slot: slot.clone() })
            .try_init()
            .map(|()| Installed {
                slot,
                filter: handle,
            })
            .map_err(|e| format!("another tracing subscriber is already set: {e}"))
    })
}

/// Sends the library's logs at or above `filter` (for example `"info"` or
/// `"xmtp_core=debug,info"`) to `logger`, replacing any earlier logger.
#[uniffi::export]
pub fn set_logger(logger: Arc<dyn FfiLogger>, filter: String) -> Result<(), FfiError> {
    let parse = || {
        EnvFilter::try_new(filter.trim()).map_err(|e| FfiError::InvalidConfiguration {
            message: format!("invalid log filter {filter:?}: {e}"),
        })
    };
    let first = parse()?;
    let installed = install(first)
        .as_ref()
        .map_err(|message| FfiError::InvalidConfiguration {
            message: message.clone(),
        })?;
    installed
        .filter
        .reload(parse()?)
        .map_err(|e| FfiError::InvalidConfiguration {
            message: format!("cannot change the log filter: {e}"),
        })?;
    if let Ok(mut slot) = installed.slot.write() {
        *slot = Some(logger);
    }
    Ok(())
}

/// Stops sending logs to the app's logger (until the next `set_logger`).
#[uniffi::export]
pub fn clear_logger() {
    if let Some(Ok(installed)) = INSTALLED.get() {
        if let Ok(mut slot) = installed.slot.write() {
            *slot = None;
        }
    }
}

/// A `tracing` layer that formats events for an [`FfiLogger`].
struct ForeignLayer {
    slot: Arc<Slot>,
}

impl<S: Subscriber> Layer<S> for ForeignLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let Some(logger) = self.slot.read().ok().and_then(|s| s.clone()) else {
            return;
        };
        let mut line = Line::default();
        event.record(&mut line);
        let meta = event.metadata();
        let _ignored = logger.log(
            FfiLogLevel::from(*meta.level()),
            meta.target().to_owned(),
            line.finish(),
        );
    }
}

/// An event's message followed by its other fields.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Line {
    fn finish(self) -> String {
        match (self.message.is_empty(), self.fields.is_empty()) {
            (_, true) => self.message,
            (true, false) => self.fields,
            (false, false) => format!("{} {}", self.message, self.fields),
        }
    }

    fn push_field(&mut self, name: &str, value: std::fmt::Arguments<'_>) {
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = write!(self.fields, "{name}={value}");
    }
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.push_field(field.name(), format_args!("{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.push_field(field.name(), format_args!("{value:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(FfiLogLevel, String, String)>>);

    impl FfiLogger for Recorder {
        fn log(
            &self,
            level: FfiLogLevel,
            target: String,
            message: String,
        ) -> Result<(), FfiCallbackError> {
            self.0.lock().unwrap().push((level, target, message));
            Ok(())
        }
    }

    #[test]
    fn events_reach_the_logger_with_level_target_message_and_fields() {
        let recorder = Arc::new(Recorder::default());
        let subscriber = tracing_subscriber::registry()
            .with(EnvFilter::new("info"))
            .with(ForeignLayer {
                slot: Arc::new(RwLock::new(Some(recorder.clone() as Arc<dyn FfiLogger>))),
            });
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "xmtp_core::sync", envelopes = 3, topic = "t", "refused an envelope");
            tracing::info!("plain");
            tracing::debug!("filtered out");
        });
        let lines = recorder.0.lock().unwrap().clone();
        assert_eq!(
            lines,
            [
                (
                    FfiLogLevel::Warn,
                    "xmtp_core::sync".to_owned(),
                    "refused an envelope envelopes=3 topic=t".to_owned()
                ),
                (
                    FfiLogLevel::Info,
                    module_path!().to_owned(),
                    "plain".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_malformed_filter_is_a_configuration_error() {
        let err = set_logger(Arc::new(Recorder::default()), "xmtp_core=loud".into()).unwrap_err();
        assert!(matches!(err, FfiError::InvalidConfiguration { .. }));
    }
}

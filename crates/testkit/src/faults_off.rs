//! Without the `test-util` feature: no fault knobs. The mocks call the same `arrival` / `gate`
//! as with them, and every request proceeds at once, unscripted.

use rmq_common::ResponseCode;
use rmq_remoting::RequestContext;

/// What a request should get: here always [`Gate::Proceed`] without a scripted code.
pub(crate) enum Gate {
    /// Handle it (never scripted without the knobs).
    Proceed(Option<(ResponseCode, Option<String>)>),
    /// Not built without the knobs; kept so the mocks match on the same outcomes.
    #[allow(dead_code)]
    Refuse(ResponseCode, Option<String>),
    /// Not built without the knobs; kept so the mocks match on the same outcomes.
    #[allow(dead_code)]
    Done,
}

/// No settings to capture without the knobs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival;

/// The fault settings of a mock server: none without the `test-util` feature. (Braced, not a
/// unit struct: the mocks build it with `Faults::default()` as they do the real one.)
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults {}

impl Faults {
    pub(crate) fn arrival(&self, _: &RequestContext) -> Arrival {
        Arrival
    }

    pub(crate) async fn gate(&self, _: Arrival, _: &RequestContext, _: bool) -> Gate {
        Gate::Proceed(None)
    }
}

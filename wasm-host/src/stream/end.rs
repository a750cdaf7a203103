//! The end of a request inside one plugin: the final facts into the view, then `on_log` →
//! `on_done` → `on_delete` (Envoy's order), also for a request abandoned midway.

use std::time::Duration;

use super::{ActiveStream, Ending};
use crate::metrics::host::Callback;

impl ActiveStream {
    /// End of the request: `on_log` → `on_done` → `on_delete`, with the final facts.
    pub(crate) fn finish(mut self, ending: &Ending) {
        self.end(ending);
    }

    fn end(&mut self, ending: &Ending) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        if !self.plugin().needs_end() {
            // Nothing past the request phases is exported: no facts to gather, no callback.
            self.with(|inst, ctx| {
                inst.state().streams.remove(&ctx);
                Ok(())
            });
            return;
        }
        let done = self.with(|inst, ctx| {
            if let Some(stream) = inst.state().streams.get_mut(&ctx) {
                // The head has left: a local reply now is refused (as Envoy refuses a second).
                stream.head_sent = true;
                let response = &mut stream.response;
                // What was sent wins (a late local reply replaced the upstream's answer).
                response.code = ending.code.or(response.code);
                response.code_details = ending.details.or(response.code_details);
                response.size = Some(ending.sent);
                response.duration = Some(stream.info.elapsed());
                if ending.headers.is_some() {
                    stream.response_headers = ending.headers.clone();
                }
                stream.response_trailers = ending.trailers.clone();
            }
            // Envoy's order: trailers (read-only here: they have been sent) before `on_log`.
            if let Some(trailers) = ending.trailers.as_ref().filter(|t| !t.is_empty()) {
                inst.on_trailers(Callback::ResponseTrailers, ctx, trailers.len())?;
            }
            let done = inst.on_log_and_done(ctx)?;
            let called_done = inst.state().streams.get(&ctx).is_some_and(|s| s.done);
            if done || called_done {
                inst.on_delete(ctx)?;
                return Ok(true);
            }
            Ok(false)
        });
        // on_done returned false: the plugin finishes later with proxy_done.
        if done == Some(false) {
            self.await_done();
        }
    }

    fn await_done(&self) {
        let (plugin, lease, ctx) = (self.plugin().clone(), self.lease, self.ctx);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            plugin.with(lease, |inst| inst.on_delete(ctx));
            return;
        };
        runtime.spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                let done = plugin.with(lease, |inst| {
                    Ok(inst.state().streams.get(&ctx).is_none_or(|s| s.done))
                });
                if done != Some(false) || tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            plugin.with(lease, |inst| inst.on_delete(ctx));
        });
    }
}

/// A request abandoned midway (the client left, the future was dropped) still gets its
/// end-of-request callbacks, as Envoy does on a stream reset, so the guest forgets the context.
impl Drop for ActiveStream {
    fn drop(&mut self) {
        self.end(&Ending::default());
    }
}

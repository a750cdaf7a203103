//! [`Lease`]: a pooled connection that goes back to the pool only if its last statement
//! finished. One that did not (the api's statement deadline passed, or the request was dropped
//! mid-statement) is discarded and its statement cancelled on the server.
//!
//! Why discard: the connection still owes the response of the abandoned statement, which may
//! come much later or, from a frozen server, not at all; back in the pool it would make the next
//! request queue behind that response. Why cancel: a closed socket is only noticed by the server
//! when the backend next talks to the client, so a statement waiting on a lock or a slow scan
//! would keep running and holding its locks. The cancel request goes over a new connection to
//! the postmaster; when the server is frozen it waits in the listen queue and is handled as soon
//! as the server runs again.

use std::{
    ops::Deref,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use deadpool_postgres::{ClientWrapper, Object};
use tokio_postgres::NoTls;
use tracing::{debug, warn};

use crate::error::Chain;

/// A pooled connection, checked out for one database call.
pub(super) struct Lease {
    object: Option<Object>,
    /// A statement started and has not finished.
    busy: AtomicBool,
    /// How long sending the cancel request may take (connect and write).
    cancel_timeout: Duration,
}

impl Lease {
    pub(super) fn new(object: Object, cancel_timeout: Duration) -> Lease {
        Lease {
            object: Some(object),
            busy: AtomicBool::new(false),
            cancel_timeout,
        }
    }

    /// A statement is on the wire: until [`Lease::finished`], dropping the lease abandons it.
    pub(super) fn started(&self) {
        self.busy.store(true, Ordering::Relaxed);
    }

    /// The statement answered (success or error): the connection is reusable.
    pub(super) fn finished(&self) {
        self.busy.store(false, Ordering::Relaxed);
    }
}

impl Deref for Lease {
    type Target = ClientWrapper;

    fn deref(&self) -> &ClientWrapper {
        self.object.as_ref().expect("present until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(object) = self.object.take() else {
            return;
        };
        if !*self.busy.get_mut() {
            // Dropping the object returns it to the pool.
            return;
        }
        let cancel = object.cancel_token();
        // Taken out of the pool, the pool may open a replacement at once; dropping the wrapper
        // aborts its connection task, which closes the socket now.
        drop(Object::take(object));
        debug!("connection discarded: a statement on it did not finish");
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let timeout = self.cancel_timeout;
        runtime.spawn(async move {
            match tokio::time::timeout(timeout, cancel.cancel_query(NoTls)).await {
                Ok(Ok(())) => debug!("cancel request sent for an abandoned statement"),
                Ok(Err(error)) => {
                    warn!(error = %Chain(&error), "could not send a cancel request for an abandoned statement; the server's statement_timeout ends it")
                }
                Err(_) => {
                    warn!(?timeout, "cancel request for an abandoned statement not sent in time; the server's statement_timeout ends it")
                }
            }
        });
    }
}

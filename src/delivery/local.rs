use std::sync::Arc;

use super::{Delivery, Kick, Membership, Push};
use crate::connect::Hub;

/// Delivery when connect runs in the same process (`gim serve`): a push is queued on
/// the sessions directly, with no network hop.
#[derive(Debug)]
pub struct LocalDelivery {
    hub: Arc<Hub>,
}

impl LocalDelivery {
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

impl Delivery for LocalDelivery {
    fn deliver(&self, pushes: Vec<Push>) {
        for push in &pushes {
            self.hub.push(push);
        }
    }

    fn kick(&self, kick: Kick) {
        self.hub.kick(&kick, 0);
    }

    fn membership(&self, changes: Vec<Membership>) {
        for change in &changes {
            self.hub.membership(change);
        }
    }
}

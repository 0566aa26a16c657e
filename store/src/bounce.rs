//! A unique envelope sender per queued message, for accounts that ask
//! for one: `user<sep>dsn.<id>.<mac>@domain`, where `<sep>` is the
//! domain's first catchall separator (so the address still reaches the
//! account), `<id>` the queue id and `<mac>` the first
//! [`MAC_HEX`] hex digits of an HMAC-SHA256 of the id under a key only
//! this server knows. A DSN that comes back to such an address names the
//! message it is about; nobody else can make one up for a message of
//! their choosing.

use crate::secrets::random_bytes;
use crate::{keys, QueueId, Result, Store};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Hex digits of the MAC kept in the address: 64 bits.
pub const MAC_HEX: usize = 16;
/// RFC 5321 4.5.3.1.1: the longest local part.
pub const MAX_LOCAL_PART: usize = 64;
/// What starts the tag, after the separator.
const TAG: &str = "dsn.";

impl Store {
    /// The unique envelope sender of queued message `id` sent by `sender`:
    /// `None` when the sender's domain has no catchall separator, when
    /// the sender's local part holds a separator character or is quoted
    /// (the tagged address would reach another account, or none), or
    /// when it would be longer than RFC 5321 4.5.3.1.1's 64 octets.
    pub fn bounce_address(&self, sender: &str, id: QueueId) -> Result<Option<String>> {
        let Some((local, domain)) = sender.rsplit_once('@') else {
            return Ok(None);
        };
        let Some(record) = self.domain(&domain.to_ascii_lowercase())? else {
            return Ok(None);
        };
        let Some(sep) = record.catchall_separator.chars().next() else {
            return Ok(None);
        };
        if local.contains(|c| record.catchall_separator.contains(c) || c == '"') {
            return Ok(None);
        }
        let mac = self.bounce_mac(id)?;
        let tagged = format!("{local}{sep}{TAG}{}.{mac}", id.0);
        if tagged.len() > MAX_LOCAL_PART {
            return Ok(None);
        }
        Ok(Some(format!("{tagged}@{domain}")))
    }

    /// The queue id an address made by [`Store::bounce_address`] names,
    /// its MAC checked; `None` for any other address.
    pub fn bounce_id(&self, address: &str) -> Result<Option<QueueId>> {
        if !may_be_bounce_address(address) {
            return Ok(None);
        }
        let Some((local, domain)) = address.rsplit_once('@') else {
            return Ok(None);
        };
        let Some(record) = self.domain(&domain.to_ascii_lowercase())? else {
            return Ok(None);
        };
        let Some(at) = local.find(|c| record.catchall_separator.contains(c)) else {
            return Ok(None);
        };
        let tag = &local[at..];
        let tag = &tag[tag.chars().next().map_or(0, char::len_utf8)..];
        let Some(rest) = tag
            .get(..TAG.len())
            .filter(|t| t.eq_ignore_ascii_case(TAG))
            .map(|_| &tag[TAG.len()..])
        else {
            return Ok(None);
        };
        let Some((id, mac)) = rest.split_once('.') else {
            return Ok(None);
        };
        let Ok(id) = id.parse::<u64>() else {
            return Ok(None);
        };
        // Local parts may come back in another case.
        let want = self.bounce_mac(QueueId(id))?;
        Ok(ring_eq(want.as_bytes(), mac.to_ascii_lowercase().as_bytes()).then_some(QueueId(id)))
    }

    fn bounce_mac(&self, id: QueueId) -> Result<String> {
        let key = self.bounce_key()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(&id.0.to_be_bytes());
        let sum = mac.finalize().into_bytes();
        Ok(sum[..MAC_HEX / 2]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }

    /// The server's key, made on first use.
    fn bounce_key(&self) -> Result<Vec<u8>> {
        let k = keys::meta(keys::BOUNCE_KEY);
        if let Some(v) = self.inner.db.get(&k)? {
            return Ok(v.to_vec());
        }
        let fresh = random_bytes(32)?;
        self.writable()?;
        // Two first uses at once: the first write wins, both use it.
        let _ = self
            .inner
            .db
            .compare_and_swap(&k, None::<&[u8]>, Some(fresh.as_slice()))?;
        let v = self.inner.db.get(&k)?.map(|v| v.to_vec()).unwrap_or(fresh);
        self.flush()?;
        Ok(v)
    }
}

/// Whether `address` may be one [`Store::bounce_address`] made: its local
/// part holds the tag. Cheap, without the store: most mail is to other
/// addresses, and needs no lookup at all.
pub fn may_be_bounce_address(address: &str) -> bool {
    let local = address.rsplit_once('@').map_or(address, |(l, _)| l);
    local.to_ascii_lowercase().contains(TAG)
}

/// Equal, in time that does not depend on where they differ.
fn ring_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

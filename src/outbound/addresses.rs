//! Which addresses gim may connect to for requests an app's settings name (webhook
//! endpoints, before-send hooks). Addresses that are not on the public internet —
//! loopback, private networks, link-local (where clouds serve instance metadata),
//! reserved ranges — are refused unless the operator allows their range
//! (`outbound.allowed_ranges`): in a deployment shared by many apps, a URL an app's
//! backend gives must not become a way into the operator's own network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The configuration key that allows ranges, named in refusals.
pub const SETTING: &str = "outbound.allowed_ranges";

/// A range of addresses that are not public, by the name the configuration uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, 100.64/10 (carrier-grade NAT), fc00::/7, fec0::/10.
    Private,
    /// 169.254/16 (cloud metadata lives there), fe80::/10.
    LinkLocal,
    /// Unspecified, multicast, documentation, benchmarking and other reserved ranges.
    Reserved,
}

impl Special {
    pub const ALL: [Special; 4] = [Special::Loopback, Special::Private, Special::LinkLocal, Special::Reserved];

    pub fn name(self) -> &'static str {
        match self {
            Special::Loopback => "loopback",
            Special::Private => "private",
            Special::LinkLocal => "link_local",
            Special::Reserved => "reserved",
        }
    }

    /// The range `ip` is in, if it is not a public address. An IPv6 address that carries
    /// an IPv4 one (mapped, NAT64, 6to4, compatible) is judged by the IPv4 address.
    pub fn of(ip: IpAddr) -> Option<Special> {
        match ip {
            IpAddr::V4(v4) => special_v4(v4),
            IpAddr::V6(v6) => match embedded_v4(v6) {
                Some(v4) => special_v4(v4),
                None => special_v6(v6),
            },
        }
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<Special> {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (127, ..) => Some(Special::Loopback),
        (10, ..) | (192, 168, _) => Some(Special::Private),
        (172, 16..=31, _) | (100, 64..=127, _) => Some(Special::Private),
        (169, 254, _) => Some(Special::LinkLocal),
        (0, ..) | (192, 0, 0) | (192, 0, 2) | (198, 18..=19, _) | (198, 51, 100) | (203, 0, 113) | (224.., ..) => {
            Some(Special::Reserved)
        }
        _ => None,
    }
}

fn special_v6(ip: Ipv6Addr) -> Option<Special> {
    let segments = ip.segments();
    if ip == Ipv6Addr::LOCALHOST {
        Some(Special::Loopback)
    } else if segments[0] & 0xfe00 == 0xfc00 || segments[0] & 0xffc0 == 0xfec0 {
        Some(Special::Private)
    } else if segments[0] & 0xffc0 == 0xfe80 {
        Some(Special::LinkLocal)
    } else if ip.is_unspecified()
        || segments[0] & 0xff00 == 0xff00
        || (segments[0], segments[1]) == (0x2001, 0x0db8)
        || (segments[0], segments[1]) == (0x2001, 0)
        || segments[..4] == [0x0100, 0, 0, 0]
    {
        Some(Special::Reserved)
    } else {
        None
    }
}

/// The IPv4 address an IPv6 one carries: IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible
/// (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:aabb:ccdd::).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let last = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(last(hi, lo)),
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) != (0, 0) && (hi, lo) != (0, 1) => Some(last(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(last(hi, lo)),
        [0x2002, hi, lo, ..] => Some(last(hi, lo)),
        _ => None,
    }
}

/// One entry of `outbound.allowed_ranges`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowed {
    Named(Special),
    Cidr(IpAddr, u8),
}

impl Allowed {
    fn parse(entry: &str) -> Result<Self, String> {
        if let Some(special) = Special::ALL.into_iter().find(|special| special.name() == entry) {
            return Ok(Allowed::Named(special));
        }
        let (address, bits) = entry.split_once('/').ok_or_else(|| {
            format!("{SETTING}: {entry:?} is neither a range name (loopback, private, link_local, reserved) nor a CIDR")
        })?;
        let address: IpAddr = address.parse().map_err(|_| format!("{SETTING}: {entry:?} is not a CIDR"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        match bits.parse::<u8>() {
            Ok(bits) if bits <= max => Ok(Allowed::Cidr(address, bits)),
            _ => Err(format!("{SETTING}: {entry:?} needs a prefix length of 0 to {max}")),
        }
    }

    fn contains(self, ip: IpAddr, special: Special) -> bool {
        match (self, ip) {
            (Allowed::Named(named), _) => named == special,
            (Allowed::Cidr(IpAddr::V4(net), bits), IpAddr::V4(ip)) => prefix(u32::from(net), u32::from(ip), bits, 32),
            (Allowed::Cidr(IpAddr::V6(net), bits), IpAddr::V6(ip)) => {
                prefix(u128::from(net), u128::from(ip), bits, 128)
            }
            _ => false,
        }
    }
}

fn prefix<T>(net: T, ip: T, bits: u8, width: u8) -> bool
where
    T: Copy + PartialEq + std::ops::Shr<u32, Output = T>,
{
    bits == 0 || net >> u32::from(width - bits) == ip >> u32::from(width - bits)
}

/// The addresses an operator lets outbound requests reach beyond the public internet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allowed: Vec<Allowed>,
}

impl AddressPolicy {
    /// From `outbound.allowed_ranges`: range names and CIDRs.
    pub fn new(entries: &[String]) -> Result<Self, String> {
        Ok(Self { allowed: entries.iter().map(|entry| Allowed::parse(entry.trim())).collect::<Result<_, _>>()? })
    }

    /// Whether requests may go to `ip`; the refusal says why and what would allow it.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        let Some(special) = Special::of(ip) else { return Ok(()) };
        if self.allowed.iter().any(|allowed| allowed.contains(ip, special)) {
            return Ok(());
        }
        Err(format!(
            "{ip} is a {} address, which gim does not connect to unless {SETTING} allows it (\"{}\" or a CIDR)",
            special.name(),
            special.name()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_off_the_public_internet_are_named() {
        let cases = [
            ("8.8.8.8", None),
            ("2606:4700::1111", None),
            ("127.0.0.1", Some(Special::Loopback)),
            ("127.255.0.9", Some(Special::Loopback)),
            ("::1", Some(Special::Loopback)),
            ("10.1.2.3", Some(Special::Private)),
            ("172.16.0.1", Some(Special::Private)),
            ("172.31.255.255", Some(Special::Private)),
            ("172.32.0.1", None),
            ("192.168.1.1", Some(Special::Private)),
            ("100.64.0.1", Some(Special::Private)),
            ("fd00::1", Some(Special::Private)),
            ("169.254.169.254", Some(Special::LinkLocal)),
            ("fe80::1", Some(Special::LinkLocal)),
            ("0.0.0.0", Some(Special::Reserved)),
            ("::", Some(Special::Reserved)),
            ("224.0.0.1", Some(Special::Reserved)),
            ("255.255.255.255", Some(Special::Reserved)),
            ("ff02::1", Some(Special::Reserved)),
            ("2001:db8::1", Some(Special::Reserved)),
            ("::ffff:127.0.0.1", Some(Special::Loopback)),
            ("::ffff:169.254.169.254", Some(Special::LinkLocal)),
            ("64:ff9b::10.0.0.1", Some(Special::Private)),
            ("2002:a9fe:a9fe::", Some(Special::LinkLocal)),
            ("::ffff:8.8.8.8", None),
        ];
        for (address, expected) in cases {
            assert_eq!(Special::of(ip(address)), expected, "{address}");
        }
    }

    #[test]
    fn only_what_the_operator_allows_is_reached() {
        let none = AddressPolicy::default();
        assert!(none.check(ip("93.184.216.34")).is_ok(), "public addresses are always reached");
        let refused = none.check(ip("169.254.169.254")).unwrap_err();
        assert!(refused.contains("link_local") && refused.contains(SETTING), "{refused}");

        let policy = AddressPolicy::new(&["loopback".into(), "10.20.0.0/16".into(), "fd12::/16".into()]).unwrap();
        assert!(policy.check(ip("127.0.0.1")).is_ok());
        assert!(policy.check(ip("::1")).is_ok());
        assert!(policy.check(ip("10.20.3.4")).is_ok());
        assert!(policy.check(ip("10.21.3.4")).is_err(), "outside the CIDR");
        assert!(policy.check(ip("fd12::5")).is_ok());
        assert!(policy.check(ip("192.168.0.1")).is_err());
        assert!(policy.check(ip("169.254.169.254")).is_err());

        assert!(AddressPolicy::new(&["everything".into()]).is_err());
        assert!(AddressPolicy::new(&["10.0.0.0/33".into()]).is_err());
        assert!(AddressPolicy::new(&["10.0.0.0".into()]).is_err());
        assert!(AddressPolicy::new(&["0.0.0.0/0".into()]).unwrap().check(ip("10.0.0.1")).is_ok());
    }
}

//! Which resolved addresses a build may be connected to. The proxy resolves every name itself and checks
//! the address it is about to connect to (never a name resolved again later, so DNS rebinding cannot move
//! an allowed name onto the host's own services). Special-purpose ranges are refused unless an allow-list
//! entry names the address itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused, or `None` when any build may reach it.
pub fn special(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(a) => special_v4(a),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            // ::ffff:a.b.c.d is a.b.c.d.
            Some(v4) => special_v4(v4),
            None => special_v6(a),
        },
    }
}

fn special_v4(a: Ipv4Addr) -> Option<&'static str> {
    let [o0, o1, ..] = a.octets();
    if a.is_unspecified() || o0 == 0 {
        Some("the unspecified network 0.0.0.0/8")
    } else if a.is_loopback() {
        Some("loopback (127.0.0.0/8): this host's own services")
    } else if a.is_link_local() {
        Some("link-local (169.254.0.0/16), where cloud metadata services answer")
    } else if a.is_private() {
        Some("a private network (10/8, 172.16/12, 192.168/16)")
    } else if o0 == 100 && (64..128).contains(&o1) {
        Some("shared address space (100.64.0.0/10)")
    } else if o0 == 192 && o1 == 0 && a.octets()[2] == 0 {
        Some("IETF protocol assignments (192.0.0.0/24)")
    } else if o0 == 198 && (o1 == 18 || o1 == 19) {
        Some("the benchmarking network 198.18.0.0/15")
    } else if a.is_documentation() {
        Some("a documentation network")
    } else if a.is_multicast() || a.is_broadcast() || o0 >= 240 {
        Some("multicast, broadcast or reserved")
    } else {
        None
    }
}

fn special_v6(a: Ipv6Addr) -> Option<&'static str> {
    let s = a.segments();
    if a.is_unspecified() {
        Some("the unspecified address ::")
    } else if a.is_loopback() {
        Some("loopback (::1): this host's own services")
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Some("link-local (fe80::/10)")
    } else if (s[0] & 0xfe00) == 0xfc00 {
        Some("unique-local (fc00::/7), a private network")
    } else if a.is_multicast() {
        Some("multicast (ff00::/8)")
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        Some("the documentation network 2001:db8::/32")
    } else if s[0] == 0x0064 && s[1] == 0xff9b {
        // NAT64 embeds an IPv4 address: judge that one.
        special_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ))
    } else if s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0 {
        Some("an IPv4-compatible address (deprecated)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::special;

    fn refused(a: &str) -> bool {
        special(a.parse().unwrap()).is_some()
    }

    #[test]
    fn special_ranges_are_refused_and_public_addresses_are_not() {
        for a in [
            "127.0.0.1",
            "127.9.9.9",
            "0.0.0.0",
            "169.254.169.254",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "192.0.0.170",
            "198.18.0.1",
            "192.0.2.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "fc12::1",
            "ff02::1",
            "2001:db8::1",
            // The same addresses hidden in IPv6 forms.
            "::ffff:169.254.169.254",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
        ] {
            assert!(refused(a), "{a} must be refused");
        }
        for a in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert!(!refused(a), "{a} is a public address");
        }
    }
}

//! `ethernet` attachments: what is accepted, and each error at its key and line.

use super::tests::{edit, load, rejects, BASE};

/// Tenant beta's plain attachment replaced by an ethernet one.
fn with_link(link: &str) -> String {
    edit(
        BASE,
        "      - name: lan-b\n        type: plain\n        tun: ixgw-beta\n        routes: [10.0.0.0/16]\n",
        link,
    )
}

const LINK: &str = "      - name: carrier-b
        type: ethernet
        interface: ixcar0
        vlan: 101
        address: 10.0.0.1/24
        next_hop: 10.0.0.254
        routes: [10.0.16.0/20]
";

#[test]
fn an_ethernet_attachment_loads_with_its_defaults() {
    let c = load(&with_link(LINK)).expect("valid");
    let crate::config::AttachmentKind::Ethernet(e) = &c.tenants[1].attachments[0].kind else {
        panic!("an ethernet attachment")
    };
    assert_eq!(
        (e.interface.as_str(), e.vlan, e.mtu),
        ("ixcar0", Some(101), 1500)
    );
    assert_eq!(e.connected().to_string(), "10.0.0.0/24");
    assert_eq!(e.mac, crate::config::derived_mac("carrier-b"));
    assert_eq!(
        e.all_routes().map(|r| r.to_string()).collect::<Vec<_>>(),
        ["10.0.0.0/24", "10.0.16.0/20"]
    );
    let text = with_link(&LINK.replace("        vlan: 101\n", "        mac: 02:00:5e:00:53:01\n"));
    let c = load(&text).expect("valid");
    let crate::config::AttachmentKind::Ethernet(e) = &c.tenants[1].attachments[0].kind else {
        panic!("an ethernet attachment")
    };
    assert_eq!((e.vlan, e.mac), (None, [2, 0, 0x5e, 0, 0x53, 1]));
}

#[test]
fn ethernet_errors_name_their_key_and_line() {
    let a = "tenants[1].attachments[0]";
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "interface: ixcar0",
            "interface: way-too-long-name0",
            "interface",
            &["1 to 15"],
        ),
        ("vlan: 101", "vlan: 4095", "vlan", &["4095", "1..=4094"]),
        (
            "address: 10.0.0.1/24",
            "address: 10.0.0.0/24",
            "address",
            &["network or broadcast"],
        ),
        (
            "address: 10.0.0.1/24",
            "address: 10.0.0.1/32",
            "address",
            &["/31"],
        ),
        (
            "address: 10.0.0.1/24",
            "address: 10.1.0.1/24",
            "address",
            &["not inside", "beta"],
        ),
        (
            "next_hop: 10.0.0.254",
            "next_hop: 10.0.1.254",
            "next_hop",
            &["not inside"],
        ),
        (
            "next_hop: 10.0.0.254",
            "next_hop: 10.0.0.1",
            "next_hop",
            &["own address"],
        ),
        (
            "next_hop: 10.0.0.254",
            "next_hop: banana",
            "next_hop",
            &["banana"],
        ),
        (
            "routes: [10.0.16.0/20]",
            "routes: [10.0.0.128/25]",
            "routes[0]",
            &["overlaps"],
        ),
        ("vlan: 101", "mac: 01:00:5e:00:00:01", "mac", &["unicast"]),
    ];
    for (old, new, key, values) in cases {
        let text = with_link(&edit(LINK, old, new));
        let needle = new.split(':').next().unwrap_or(new);
        let needle = format!("        {needle}:");
        rejects(&text, &format!("{a}.{key}"), &needle, values);
    }
    let text = with_link(&edit(LINK, "        next_hop: 10.0.0.254\n", ""));
    rejects(&text, &format!("{a}.routes"), "routes:", &["next_hop"]);
    let text = with_link(&edit(LINK, "        address: 10.0.0.1/24\n", ""));
    rejects(
        &text,
        &format!("{a}.address"),
        "- name: carrier-b",
        &["address", "ethernet"],
    );
}

#[test]
fn a_port_and_vlan_belong_to_one_attachment() {
    let second = "      - name: carrier-b2
        type: ethernet
        interface: ixcar0
        vlan: 101 # again
        address: 10.0.200.1/24
";
    let text = with_link(&format!("{LINK}{second}"));
    rejects(
        &text,
        "tenants[1].attachments[1].vlan",
        "# again",
        &["ixcar0 VLAN 101", "tenants[1].attachments[0].vlan"],
    );
    // Another VLAN of the same port is another attachment's.
    let text = with_link(&format!("{LINK}{}", second.replace("101 # again", "102")));
    load(&text).expect("another VLAN of the trunk");
    // A TUN device is no port.
    let text = edit(
        BASE,
        "        routes: [10.0.0.0/16]\n",
        &format!(
            "        routes: [10.0.0.0/16]\n{}",
            LINK.replace("ixcar0", "ixgw-beta # tun")
        ),
    );
    let msg = load(&text).expect_err("a TUN device as a port").to_string();
    assert!(msg.contains("ixgw-beta"), "{msg}");
}

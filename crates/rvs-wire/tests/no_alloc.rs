//! The hot-path functions never allocate: counted with a wrapping global
//! allocator around one run of each.

use rvs_types::Addr;
use rvs_wire::{
    FrameBuf, Parsed, Side, TunnelKind, build_too_big, decapsulate, encapsulate, parse_frame,
    parse_tunnel, set_dst, set_icmp_error, set_src, swap_macs, verify_l4_checksum,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// 10.0.0.1:40000 -> 10.0.0.2:80 SYN "abcd" (valid checksums).
static TCP_SYN: [u8; 58] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x2c, 0x00, 0x01, 0x40, 0x00, 0x40, 0x06, 0x26, 0xc9, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00,
    0x00, 0x02, 0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x50, 0x02,
    0xff, 0xff, 0x3a, 0x84, 0x00, 0x00, 0x61, 0x62, 0x63, 0x64,
];

#[test]
fn hot_path_does_not_allocate() {
    let mut mem = [0u8; 2048];
    let before = ALLOCS.load(Ordering::Relaxed);

    mem[128..128 + TCP_SYN.len()].copy_from_slice(&TCP_SYN);
    let mut buf = FrameBuf::new(&mut mem, 128, TCP_SYN.len()).unwrap();
    let Ok(Parsed::Ip(info)) = parse_frame(buf.data()) else {
        panic!("parse");
    };
    verify_l4_checksum(buf.data(), &info).unwrap();
    set_dst(buf.data_mut(), &info, Addr::v4([192, 168, 1, 10]), 8080).unwrap();
    set_src(buf.data_mut(), &info, Addr::v4([10, 9, 9, 9]), 1234).unwrap();
    swap_macs(buf.data_mut()).unwrap();
    let Ok(Parsed::Ip(info)) = parse_frame(buf.data()) else {
        panic!("parse");
    };
    let kind = TunnelKind::Gue {
        port: 6080,
        csum: true,
        remcsum: false,
    };
    encapsulate(
        &mut buf,
        &info,
        &kind,
        Addr::v4([1, 1, 1, 1]),
        Addr::v4([2, 2, 2, 2]),
        7,
    )
    .unwrap();
    assert!(parse_tunnel(buf.data(), &[6080]).unwrap().is_some());
    assert!(decapsulate(&mut buf, &[6080]).unwrap());
    build_too_big(&mut buf, &info, 1200, Addr::v4([10, 0, 0, 254])).unwrap();
    let Ok(Parsed::Ip(err)) = parse_frame(buf.data()) else {
        panic!("parse");
    };
    set_icmp_error(
        buf.data_mut(),
        &err,
        Side::Dst,
        Addr::v4([10, 0, 0, 3]),
        Side::Src,
        Addr::v4([10, 0, 0, 3]),
        99,
    )
    .unwrap();

    assert_eq!(ALLOCS.load(Ordering::Relaxed), before);
}

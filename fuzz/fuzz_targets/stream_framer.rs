//! A TCP/TLS byte stream split anywhere frames to the same messages and keep-alives as the whole stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::{Frame, FramerRole, StreamFramer};

fn frames<'a>(role: FramerRole, chunks: impl Iterator<Item = &'a [u8]>) -> Vec<Frame> {
    let mut framer = StreamFramer::new(role);
    let mut out = Vec::new();
    for chunk in chunks {
        framer.push(chunk);
        while let Some(frame) = framer.next_frame() {
            out.push(frame);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    // The first octets choose the role and where the stream is cut; the rest is the stream.
    let [role, cuts @ ..] = data else { return };
    let cut_count = usize::from(cuts.first().copied().unwrap_or(0) % 16);
    let Some((cuts, stream)) = cuts.get(1..).and_then(|rest| rest.split_at_checked(cut_count)) else { return };
    let role = if role & 1 == 0 { FramerRole::Server } else { FramerRole::Client };

    let whole = frames(role, std::iter::once(stream));
    let mut pieces = Vec::new();
    let mut rest = stream;
    for &cut in cuts {
        let (piece, tail) = rest.split_at(usize::from(cut).min(rest.len()));
        pieces.push(piece);
        rest = tail;
    }
    pieces.push(rest);
    let split = frames(role, pieces.into_iter());
    assert_eq!(whole, split, "frames depend on where the stream was split");
});

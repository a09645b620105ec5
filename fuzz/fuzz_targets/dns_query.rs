//! Any datagram or TCP message to the lab's DNS: nothing panics, answers are never sent to answers, and a UDP answer fits its datagram.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{LazyLock, Mutex};

use harness::dns::QueryHandler;
use harness::topology::Topology;
use harness::trace::Transport;
use hickory_proto::op::{Message, MessageType};
use libfuzzer_sys::fuzz_target;

struct Server {
    runtime: tokio::runtime::Runtime,
    handler: Mutex<QueryHandler>,
}

static SERVER: LazyLock<Server> = LazyLock::new(|| Server {
    runtime: tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"),
    handler: Mutex::new(QueryHandler::new(Topology::new(Ipv4Addr::new(127, 77, 0, 0), "lab.test")).expect("zone")),
});

fuzz_target!(|data: &[u8]| {
    let [transport, query @ ..] = data else { return };
    let transport = if transport & 1 == 0 { Transport::Udp } else { Transport::Tcp };
    let source = SocketAddr::from((Ipv4Addr::new(127, 77, 0, 9), 5060));
    let server = &*SERVER;
    let mut handler = server.handler.lock().unwrap_or_else(|e| e.into_inner());
    let Some(answer) = server.runtime.block_on(handler.answer(query, source, transport)) else { return };
    let asked = Message::from_vec(query);
    assert!(!matches!(&asked, Ok(m) if m.metadata.message_type == MessageType::Response), "answered a response");
    if transport == Transport::Udp {
        let limit = asked.ok().and_then(|m| m.edns.map(|e| e.max_payload())).unwrap_or(512).max(512);
        assert!(answer.len() <= usize::from(limit), "UDP answer of {} octets over the limit {limit}", answer.len());
    } else {
        assert!(answer.len() <= usize::from(u16::MAX));
    }
});

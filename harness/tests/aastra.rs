//! The aastra profile's provisioning server over real sockets: the phone's two files with 200, nothing else for anyone, and nothing left running once it is dropped.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use harness::dut::Profile;
use harness::dut::aastra::{MAX_REQUEST_BYTES, ProvisioningServer, REQUEST_TIMEOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const MAC: &str = "00085D000001";
const GLOBAL: &str = "sip proxy ip: proxy-a.lab.test\nsip proxy port: 5060\n";
const LINE: &str = "sip line1 user name: 1001\n";

/// The server on the console address of a block this test claimed (a lab with a scripted phone).
async fn server() -> (harness::Lab, ProvisioningServer) {
    let lab = common::lab().await;
    let address = SocketAddr::new(lab.topology.console_ip(), 0);
    // Given in lower case with colons: served under the canonical upper-case name.
    let server = ProvisioningServer::start(address, "00:08:5d:00:00:01", GLOBAL.into(), LINE.into())
        .await
        .expect("the provisioning server starts");
    (lab, server)
}

async fn connect(lab: &harness::Lab, server: &ProvisioningServer) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(lab.topology.phone_ip(), 0)).unwrap();
    socket.connect(server.address()).await.expect("connects")
}

/// Sends `request` as the phone and reads the whole answer: status, headers, body.
async fn exchange(lab: &harness::Lab, server: &ProvisioningServer, request: &[u8]) -> (u16, String, String) {
    let mut stream = connect(lab, server).await;
    // A server that answers early may close before all of an oversized request is written.
    let _ = stream.write_all(request).await;
    let _ = stream.shutdown().await;
    let mut answer = Vec::new();
    tokio::time::timeout(common::ANSWER_DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("an answer in time")
        .expect("read");
    let text = String::from_utf8(answer).expect("text");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    (status, head.to_owned(), body.to_owned())
}

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: console\r\nUser-Agent: Aastra6757i/3.2.2\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn serves_the_phones_two_files_exactly() {
    let (lab, server) = server().await;
    let mut fetched = server.fetched();
    let (status, head, body) = exchange(&lab, &server, &get("/aastra.cfg")).await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(body, GLOBAL);
    assert!(head.contains(&format!("Content-Length: {}", GLOBAL.len())), "{head}");
    assert!(head.contains("Connection: close"), "{head}");
    for target in [format!("/{MAC}.cfg"), format!("/{}.cfg", MAC.to_lowercase())] {
        let (status, head, body) = exchange(&lab, &server, &get(&target)).await;
        assert_eq!(status, 200, "{target}: {head}");
        assert_eq!(body, LINE);
    }
    // HTTP/1.0 phones are served too.
    let (status, _, body) = exchange(&lab, &server, b"GET /aastra.cfg HTTP/1.0\r\n\r\n").await;
    assert_eq!((status, body.as_str()), (200, GLOBAL));
    let both = fetched.wait_for(|files| files.len() == 2);
    let files = tokio::time::timeout(common::ANSWER_DEADLINE, both).await.unwrap().unwrap().clone();
    assert_eq!(files.into_iter().collect::<Vec<_>>(), ["00085D000001.cfg", "aastra.cfg"]);
}

#[tokio::test]
async fn refuses_traversal_other_phones_and_anything_but_get() {
    let (lab, server) = server().await;
    // A file beside where a careless server would look: never served under any spelling.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("aastra.cfg"), "secret-marker").unwrap();
    std::fs::write(dir.path().join("00085D000002.cfg"), "secret-marker").unwrap();
    let abs = dir.path().display().to_string();
    let cases = [
        "/00085D000002.cfg".to_owned(),
        "/000000000000.cfg".into(),
        "/../aastra.cfg".into(),
        "/../../../../etc/passwd".into(),
        "/%2e%2e/%2e%2e/etc/passwd".into(),
        "/%2E%2E%2Faastra.cfg".into(),
        "/..%2faastra.cfg".into(),
        "/etc/passwd".into(),
        format!("{abs}/aastra.cfg"),
        format!("/..{abs}/00085D000002.cfg"),
        "/./aastra.cfg".into(),
        "//aastra.cfg".into(),
        "/aastra.cfg/".into(),
        "/aastra.cfg?mac=00085D000002".into(),
        format!("/{MAC}.cfg.bak"),
        "http://127.0.0.1/aastra.cfg".into(),
        "*".into(),
        "/".into(),
    ];
    for target in cases {
        let (status, head, body) = exchange(&lab, &server, &get(&target)).await;
        assert_eq!(status, 404, "{target}: {head}");
        assert!(body.is_empty(), "{target}: {body}");
    }
    let (status, head, body) = exchange(
        &lab,
        &server,
        b"POST /aastra.cfg HTTP/1.1\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    )
    .await;
    assert_eq!(status, 405, "{head}");
    assert!(head.contains("Allow: GET"), "{head}");
    assert!(body.is_empty());
    for method in ["HEAD", "PUT", "DELETE"] {
        let (status, _, _) = exchange(&lab, &server, format!("{method} /aastra.cfg HTTP/1.1\r\n\r\n").as_bytes()).await;
        assert_eq!(status, 405, "{method}");
    }
    // A head that never ends within the bound: 400, without reading on.
    let mut oversized = b"GET /aastra.cfg HTTP/1.1\r\nX-Padding: ".to_vec();
    oversized.extend(std::iter::repeat_n(b'a', MAX_REQUEST_BYTES * 4));
    let (status, head, _) = exchange(&lab, &server, &oversized).await;
    assert_eq!(status, 400, "{head}");
    let (status, _, _) = exchange(&lab, &server, b"GET /aastra.cfg\r\n\r\n").await;
    assert_eq!(status, 400, "no HTTP version");
    let (status, _, _) = exchange(&lab, &server, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n").await;
    assert_eq!(status, 400, "a TLS hello");
    assert!(server.fetched().borrow().is_empty(), "nothing was served");
}

/// A client that never finishes its request is answered 408 after the read timeout.
#[tokio::test]
async fn a_request_that_does_not_arrive_times_out() {
    let (lab, server) = server().await;
    let mut stream = connect(&lab, &server).await;
    stream.write_all(b"GET /aastra.cfg HTTP/1.1\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(REQUEST_TIMEOUT + common::ANSWER_DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("answered within the read timeout")
        .unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 408 "), "{}", String::from_utf8_lossy(&answer));
}

/// Dropping the server closes its listener and every connection it holds: nothing lingers
/// until a timeout.
#[tokio::test]
async fn dropping_the_server_ends_its_connections() {
    let (lab, server) = server().await;
    let address = server.address();
    let mut stream = connect(&lab, &server).await;
    stream.write_all(b"GET /aastra.cfg HTTP/1.1\r\n").await.unwrap();
    drop(server);
    let mut answer = Vec::new();
    let ended = tokio::time::timeout(common::ANSWER_DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("the connection ended well before the read timeout");
    assert!(ended.is_err() || answer.is_empty(), "nothing was answered: {}", String::from_utf8_lossy(&answer));
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(lab.topology.phone_ip(), 0)).unwrap();
    assert!(socket.connect(address).await.is_err(), "the listener is closed");
}

/// The profile: `ip` and `mac` required, each checked; `run` also needs the ip at a lab phone
/// address (the block's base + 10), `provision` does not.
#[test]
fn the_profile_names_the_phone_by_ip_and_mac() {
    let profile = Profile::parse("aastra:ip=127.100.0.26,mac=00-08-5D-00-00-01").expect("parses");
    assert_eq!(profile.driver().expect("a driver").capabilities().floors.registration_retry, Duration::from_secs(30));
    profile.check(None).expect("runnable");
    let loose = Profile::parse("aastra:ip=127.0.0.1,mac=00085D000001").expect("parses");
    let error = loose.check(None).unwrap_err().to_string();
    assert!(error.contains("not a lab phone address"), "{error}");
    for (text, says) in [
        ("aastra", "needs ip="),
        ("aastra:ip=127.100.0.26", "needs mac="),
        ("aastra:ip=10.0.0.300,mac=00085D000001", "not an IP address"),
        ("aastra:ip=127.100.0.26,mac=00085D00000G", "not a MAC"),
    ] {
        let error = Profile::parse(text).unwrap_err();
        assert!(matches!(error, harness::HarnessError::Profile { .. }), "{text}: {error:?}");
        assert!(error.to_string().contains(says), "{text}: {error}");
    }
    let floors = Profile::parse("aastra:ip=127.100.0.26,mac=00085D000001,floors=none").unwrap();
    assert_eq!(floors.driver().unwrap().capabilities().floors, harness::dut::TimerFloors::default());
}

//! STUN binding requests and responses (RFC 5389), as RFC 5626 §4.4.2 uses them for keep-alives on UDP.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;
const HEADER_LEN: usize = 20;

pub(crate) fn looks_like_stun(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN
        && bytes[0] & 0xC0 == 0
        && bytes[4..8] == MAGIC_COOKIE.to_be_bytes()
        && usize::from(u16::from_be_bytes([bytes[2], bytes[3]])) == bytes.len() - HEADER_LEN
        && bytes.len().is_multiple_of(4)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StunClass {
    BindingRequest,
    BindingSuccess,
    Other(u16),
}

/// A decoded STUN message: its type, transaction id and, for a success, the mapped address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StunMessage {
    pub class: StunClass,
    pub transaction_id: [u8; 12],
    pub mapped_address: Option<SocketAddr>,
}

impl StunMessage {
    pub fn binding_request(transaction_id: [u8; 12]) -> StunMessage {
        StunMessage { class: StunClass::BindingRequest, transaction_id, mapped_address: None }
    }

    /// The success answer to `request`, reporting `source` as seen by the server.
    pub fn binding_success(request: &StunMessage, source: SocketAddr) -> StunMessage {
        StunMessage {
            class: StunClass::BindingSuccess,
            transaction_id: request.transaction_id,
            mapped_address: Some(source),
        }
    }

    /// Decodes a datagram; `None` if it is not a well-formed STUN message.
    pub fn decode(bytes: &[u8]) -> Option<StunMessage> {
        if !looks_like_stun(bytes) {
            return None;
        }
        let kind = u16::from_be_bytes([bytes[0], bytes[1]]);
        let class = match kind {
            BINDING_REQUEST => StunClass::BindingRequest,
            BINDING_SUCCESS => StunClass::BindingSuccess,
            other => StunClass::Other(other),
        };
        let mut transaction_id = [0u8; 12];
        transaction_id.copy_from_slice(&bytes[8..20]);
        let mut mapped_address = None;
        let mut rest = &bytes[HEADER_LEN..];
        while rest.len() >= 4 {
            let attr_type = u16::from_be_bytes([rest[0], rest[1]]);
            let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
            let padded = len.div_ceil(4) * 4;
            let value = rest.get(4..4 + len)?;
            if attr_type == XOR_MAPPED_ADDRESS {
                mapped_address = decode_xor_address(value, &transaction_id);
            }
            rest = rest.get(4 + padded..).unwrap_or(&[]);
        }
        Some(StunMessage { class, transaction_id, mapped_address })
    }

    pub fn encode(&self) -> Vec<u8> {
        let kind = match self.class {
            StunClass::BindingRequest => BINDING_REQUEST,
            StunClass::BindingSuccess => BINDING_SUCCESS,
            StunClass::Other(k) => k,
        };
        let mut attrs = Vec::new();
        if let Some(addr) = self.mapped_address {
            let value = encode_xor_address(addr, &self.transaction_id);
            attrs.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
            attrs.extend_from_slice(&(value.len() as u16).to_be_bytes());
            attrs.extend_from_slice(&value);
        }
        let mut out = Vec::with_capacity(HEADER_LEN + attrs.len());
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&self.transaction_id);
        out.extend_from_slice(&attrs);
        out
    }
}

fn xor_key(transaction_id: &[u8; 12]) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    key[4..].copy_from_slice(transaction_id);
    key
}

fn decode_xor_address(value: &[u8], transaction_id: &[u8; 12]) -> Option<SocketAddr> {
    let family = *value.get(1)?;
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]) ^ (MAGIC_COOKIE >> 16) as u16;
    let key = xor_key(transaction_id);
    match family {
        0x01 => {
            let raw = value.get(4..8)?;
            let octets: Vec<u8> = raw.iter().zip(key).map(|(a, k)| a ^ k).collect();
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3])), port))
        }
        0x02 => {
            let raw = value.get(4..20)?;
            let mut octets = [0u8; 16];
            for (i, (a, k)) in raw.iter().zip(key).enumerate() {
                octets[i] = a ^ k;
            }
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        _ => None,
    }
}

fn encode_xor_address(addr: SocketAddr, transaction_id: &[u8; 12]) -> Vec<u8> {
    let key = xor_key(transaction_id);
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let mut out = vec![0u8];
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.push(0x01);
            out.extend_from_slice(&port.to_be_bytes());
            out.extend(ip.octets().iter().zip(key).map(|(a, k)| a ^ k));
        }
        IpAddr::V6(ip) => {
            out.push(0x02);
            out.extend_from_slice(&port.to_be_bytes());
            out.extend(ip.octets().iter().zip(key).map(|(a, k)| a ^ k));
        }
    }
    out
}

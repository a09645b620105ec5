//! Header names, with the RFC 3261 §7.3.3 compact forms expanded, and one header line.

use std::fmt;

macro_rules! header_names {
    ($( $variant:ident => $canonical:literal $(, $compact:literal)? ; )*) => {
        /// A header's name. Known names compare without string work; compact forms parse to
        /// the same variant as their long form.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum HeaderName {
            $( $variant, )*
            Other(String),
        }

        impl HeaderName {
            /// The name as this crate prints it.
            pub fn as_str(&self) -> &str {
                match self {
                    $( HeaderName::$variant => $canonical, )*
                    HeaderName::Other(name) => name,
                }
            }

            /// The compact form's letter (RFC 3261 §7.3.3), lowercase.
            fn from_compact(letter: u8) -> Option<HeaderName> {
                match letter.to_ascii_lowercase() {
                    $( $( x if x == $compact.as_bytes()[0] => Some(HeaderName::$variant), )? )*
                    _ => None,
                }
            }
        }

        #[cfg(test)]
        const ALL_KNOWN: &[HeaderName] = &[$( HeaderName::$variant, )*];
    };
}

header_names! {
    Via => "Via", "v";
    From => "From", "f";
    To => "To", "t";
    CallId => "Call-ID", "i";
    CSeq => "CSeq";
    Contact => "Contact", "m";
    MaxForwards => "Max-Forwards";
    ContentLength => "Content-Length", "l";
    ContentType => "Content-Type", "c";
    ContentEncoding => "Content-Encoding", "e";
    Supported => "Supported", "k";
    Subject => "Subject", "s";
    Event => "Event", "o";
    AllowEvents => "Allow-Events", "u";
    ReferTo => "Refer-To", "r";
    ReferredBy => "Referred-By", "b";
    SessionExpires => "Session-Expires", "x";
    Identity => "Identity", "y";
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Route => "Route";
    RecordRoute => "Record-Route";
    Path => "Path";
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Unsupported => "Unsupported";
    FlowTimer => "Flow-Timer";
    SubscriptionState => "Subscription-State";
    RetryAfter => "Retry-After";
    WwwAuthenticate => "WWW-Authenticate";
    Authorization => "Authorization";
    ProxyAuthenticate => "Proxy-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    UserAgent => "User-Agent";
    Server => "Server";
    Allow => "Allow";
    Accept => "Accept";
}

impl HeaderName {
    /// Parses a header name, case-insensitively, expanding compact forms.
    pub fn parse(name: &str) -> HeaderName {
        use HeaderName::*;
        // Known names grouped by length, so a name is compared with two or three candidates at most.
        const LEN_2: &[HeaderName] = &[To];
        const LEN_3: &[HeaderName] = &[Via];
        const LEN_4: &[HeaderName] = &[From, CSeq, Path];
        const LEN_5: &[HeaderName] = &[Event, Route, Allow];
        const LEN_6: &[HeaderName] = &[Server, Accept];
        const LEN_7: &[HeaderName] = &[CallId, Contact, Subject, Expires, Require];
        const LEN_8: &[HeaderName] = &[ReferTo, Identity];
        const LEN_9: &[HeaderName] = &[Supported];
        const LEN_10: &[HeaderName] = &[FlowTimer, UserAgent];
        const LEN_11: &[HeaderName] = &[ReferredBy, MinExpires, Unsupported, RetryAfter];
        const LEN_12: &[HeaderName] = &[MaxForwards, ContentType, AllowEvents, RecordRoute];
        const LEN_13: &[HeaderName] = &[ProxyRequire, Authorization];
        const LEN_14: &[HeaderName] = &[ContentLength];
        const LEN_15: &[HeaderName] = &[SessionExpires];
        const LEN_16: &[HeaderName] = &[ContentEncoding, WwwAuthenticate];
        const LEN_18: &[HeaderName] = &[SubscriptionState, ProxyAuthenticate];
        const LEN_19: &[HeaderName] = &[ProxyAuthorization];
        let candidates = match name.len() {
            1 => match name.bytes().next().and_then(HeaderName::from_compact) {
                Some(known) => return known,
                None => &[][..],
            },
            2 => LEN_2,
            3 => LEN_3,
            4 => LEN_4,
            5 => LEN_5,
            6 => LEN_6,
            7 => LEN_7,
            8 => LEN_8,
            9 => LEN_9,
            10 => LEN_10,
            11 => LEN_11,
            12 => LEN_12,
            13 => LEN_13,
            14 => LEN_14,
            15 => LEN_15,
            16 => LEN_16,
            18 => LEN_18,
            19 => LEN_19,
            _ => &[][..],
        };
        candidates
            .iter()
            // Most senders use the canonical spelling, which a byte comparison confirms fastest.
            .find(|known| name == known.as_str() || name.eq_ignore_ascii_case(known.as_str()))
            .cloned()
            .unwrap_or_else(|| Other(name.to_owned()))
    }

    /// Headers whose value is a comma-separated list that may be split into several values
    /// (RFC 3261 §7.3.1). Contact is one too, except for `*`.
    pub fn is_list(&self) -> bool {
        matches!(
            self,
            HeaderName::Via
                | HeaderName::Contact
                | HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::Path
                | HeaderName::Supported
                | HeaderName::Require
                | HeaderName::ProxyRequire
                | HeaderName::Unsupported
                | HeaderName::Allow
                | HeaderName::AllowEvents
                | HeaderName::Accept
        )
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for HeaderName {
    fn from(name: &str) -> HeaderName {
        HeaderName::parse(name)
    }
}

/// One header line; folded continuation lines are joined with a single space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_name_parses_back_whatever_its_case() {
        for known in ALL_KNOWN {
            let name = known.as_str();
            assert_eq!(&HeaderName::parse(name), known, "{name}");
            assert_eq!(&HeaderName::parse(&name.to_ascii_lowercase()), known, "{name}");
            assert_eq!(&HeaderName::parse(&name.to_ascii_uppercase()), known, "{name}");
        }
        assert_eq!(HeaderName::parse("q"), HeaderName::Other("q".into()));
        assert_eq!(HeaderName::parse(""), HeaderName::Other(String::new()));
        assert_eq!(HeaderName::parse("Via-Extra"), HeaderName::Other("Via-Extra".into()));
    }
}

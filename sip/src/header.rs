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

            /// Parses a header name, case-insensitively, expanding compact forms.
            pub fn parse(name: &str) -> HeaderName {
                $(
                    if name.eq_ignore_ascii_case($canonical) { return HeaderName::$variant; }
                    $( if name.eq_ignore_ascii_case($compact) { return HeaderName::$variant; } )?
                )*
                HeaderName::Other(name.to_owned())
            }
        }
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

//! Socket types as READY names them, and which may talk to which (RFC 37's table).

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketType {
    Req,
    Rep,
    Dealer,
    Router,
    Pub,
    XPub,
    Sub,
    XSub,
    Push,
    Pull,
    Pair,
}

impl SocketType {
    pub fn name(self) -> &'static str {
        match self {
            SocketType::Req => "REQ",
            SocketType::Rep => "REP",
            SocketType::Dealer => "DEALER",
            SocketType::Router => "ROUTER",
            SocketType::Pub => "PUB",
            SocketType::XPub => "XPUB",
            SocketType::Sub => "SUB",
            SocketType::XSub => "XSUB",
            SocketType::Push => "PUSH",
            SocketType::Pull => "PULL",
            SocketType::Pair => "PAIR",
        }
    }

    pub fn from_name(name: &[u8]) -> Option<SocketType> {
        use SocketType::*;
        [Req, Rep, Dealer, Router, Pub, XPub, Sub, XSub, Push, Pull, Pair]
            .into_iter()
            .find(|t| t.name().as_bytes() == name)
    }

    /// Whether a peer of type `peer` may connect to this socket.
    pub fn pairs_with(self, peer: SocketType) -> bool {
        use SocketType::*;
        match self {
            Req => matches!(peer, Rep | Router),
            Rep => matches!(peer, Req | Dealer),
            Dealer => matches!(peer, Rep | Dealer | Router),
            Router => matches!(peer, Req | Dealer | Router),
            Pub | XPub => matches!(peer, Sub | XSub),
            Sub | XSub => matches!(peer, Pub | XPub),
            Push => peer == Pull,
            Pull => peer == Push,
            Pair => peer == Pair,
        }
    }

    /// Receives subscriptions from its peers.
    pub fn is_publisher(self) -> bool {
        matches!(self, SocketType::Pub | SocketType::XPub)
    }

    /// Announces an identity in READY (the types a ROUTER can route to by name).
    pub fn sends_identity(self) -> bool {
        matches!(self, SocketType::Req | SocketType::Dealer | SocketType::Router)
    }
}

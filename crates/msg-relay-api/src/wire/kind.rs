//! Frame kind byte values.

/// Client → server: store a message.
pub const PUBLISH: u8 = 0x01;
/// Client → server: wait for a message.
pub const ASK: u8 = 0x02;
/// Client → server: withdraw an outstanding ask.
pub const CANCEL: u8 = 0x03;
/// Client → server: this receiver has the message and will not ask for it again.
pub const CONSUME: u8 = 0x04;
/// Client → server: store a message for a number of receivers.
pub const PUBLISH_FOR: u8 = 0x05;
/// Server → client: a publish was accepted.
pub const ACK: u8 = 0x81;
/// Server → client: the answer to an ask.
pub const DELIVER: u8 = 0x82;
/// Server → client: a request (or an undecodable frame) was rejected.
pub const ERROR: u8 = 0x83;
/// Server → client: the answer to a candidate ask, with the candidate's number.
pub const DELIVER_CANDIDATE: u8 = 0x84;

//! The `/v1` API as types, shared by both ends of the wire: the server's handlers serialize them, the
//! typed [`crate::client::Client`] (behind `reprod status`, `reprod submit`, `reprod worker` and the tests)
//! deserializes them. A renamed field is a compile error on both sides, not an empty page.
//!
//! The storage schema ([`crate::store::VerdictRecord`]) is not the wire contract: a record is turned into
//! a [`RecordView`] when it is served. The verdict itself ([`crate::verdict::Verdict`]) is one type from
//! the worker that decides it to the client that prints it, and so is a verdict's [`Publication`], which the
//! store keeps as it is served.

mod answers;
mod error;
mod publication;
mod worker;

pub use answers::{
    AttestationLinks, DigestAnswer, Health, JobView, KeyInfo, Keys, Links, QueuedJob, QueuedJobs,
    RecordView, SubjectSummary, Submission, SubmitAnswer, SubmittedJob, VerdictList,
};
pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use publication::{Publication, PublicationState, Pushed, Skipped};
pub use worker::{Completion, CompletionAnswer, Heartbeat, HeartbeatAnswer, Lease};

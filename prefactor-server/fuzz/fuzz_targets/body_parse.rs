//! Request bodies through the server's parser, as every endpoint types them: any bytes give a
//! typed request or a 400/422 error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prefactor_protocol::{
    CreateSpanRequest, FinishInstanceRequest, FinishSpanRequest, RecordQualityRequest, RegisterInstanceRequest,
    StartInstanceRequest, TerminateInstanceRequest,
};
use prefactor_server::body::{check_integers, parse};

fuzz_target!(|data: &[u8]| {
    let statuses = [
        parse::<CreateSpanRequest>(data).err().map(|error| error.status),
        parse::<FinishSpanRequest>(data).err().map(|error| error.status),
        parse::<RegisterInstanceRequest>(data).err().map(|error| error.status),
        parse::<StartInstanceRequest>(data).err().map(|error| error.status),
        parse::<FinishInstanceRequest>(data).err().map(|error| error.status),
        parse::<RecordQualityRequest>(data).err().map(|error| error.status),
        parse::<TerminateInstanceRequest>(data).err().map(|error| error.status),
        check_integers(data).err().map(|error| error.status),
    ];
    for status in statuses.into_iter().flatten() {
        assert!(status == 400 || status == 422, "a body error is a 400 or a 422, got {status}");
    }
});

pub struct Handle;

#[prefactor::span(schema = "agent:tool")]
fn open(path: &str) -> Handle {
    let _ = path;
    Handle
}

#[prefactor::span(schema = "agent:tool")]
fn try_open(path: &str) -> Result<Handle, String> {
    let _ = path;
    Ok(Handle)
}

fn main() {}

#[prefactor::agent(purpose = "production", stop_on_terminate, id = "")]
fn run() -> Result<(), String> {
    Ok(())
}

#[prefactor::agent(stop_on_terminate)]
async fn no_result() -> u32 {
    1
}

#[prefactor::agent(nam = "bot")]
fn typo() {}

fn main() {}

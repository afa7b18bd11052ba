// The expression is the user's code: a name it uses is resolved where they wrote it.
#[prefactor::agent(external_id = missing)]
fn unknown_name() {}

fn main() {
    unknown_name();
}

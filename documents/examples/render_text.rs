//! Renders text from stdin to a PDF on stdout with the default layout, and
//! prints the page count to stderr. Used to (re)generate the test fixtures
//! in `tests/fixtures/` and for manual checks with `qpdf --check`.

use std::io::{self, BufWriter};

fn main() -> io::Result<()> {
    let stdin = io::stdin().lock();
    let stdout = BufWriter::new(io::stdout().lock());
    let pages = faxbot_documents::text::render_text_pdf(stdin, stdout, &Default::default())?;
    eprintln!("{pages} pages");
    Ok(())
}

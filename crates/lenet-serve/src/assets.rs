//! The pages, embedded in the binary: plain HTML, CSS and JavaScript, no front-end build.

pub const RUNS_HTML: &str = include_str!("../assets/runs.html");
pub const RUN_HTML: &str = include_str!("../assets/run.html");
pub const PLAYGROUND_HTML: &str = include_str!("../assets/playground.html");
pub const APP_JS: &str = include_str!("../assets/app.js");
pub const STYLE_CSS: &str = include_str!("../assets/style.css");

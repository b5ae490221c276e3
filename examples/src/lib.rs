//! Examples of lenet used as a library: see the `[[example]]`s in this package.

/// A value a documentation fragment uses without showing where it comes from (its
/// `<!-- snippet: body -->` marker declares it): fragments are compiled, never run.
func given<T>() -> T {
    fatalError("a documentation fragment is compiled, not run")
}

import Foundation

// Turns the Swift code blocks of Markdown documents into Swift files of one test target, so that
// the documents' code compiles with every build (the DocSnippets plugin runs it).
//
//   DocSnippetExtractor --root DIR [--library NAME]... [--import MODULE]... --document DOC.md OUT.swift ...
//
// A ```swift block is, by default, declarations: they compile at file scope, made `fileprivate`
// so that documents (and the modules they import) can declare the same names. An HTML comment on
// the line before the block, invisible to readers, says otherwise:
//
//   <!-- snippet: body -->          statements: they compile as the body of a function
//   <!-- snippet: scoped -->        declarations that would clash with the document's others: they
//                                   compile inside a namespace of their own
//   <!-- snippet: declarations -->  the default, for a marker that only declares what the block uses
//   <!-- snippet: skip: REASON -->  not compiled
//
// Lines between a marker's first line and its `-->` declare what the block uses and does not show,
// placed where the block's code goes (file scope, the namespace or the function), e.g.
//
//   <!-- snippet: body
//   let store: PostgresEventStore = given()
//   -->
//
// A package manifest (a block that imports PackageDescription or starts with a
// `// swift-tools-version` or `// Package.swift` line) cannot compile in a target: its
// `.product(name:package: "EventFleet")` lines are checked against this package's libraries
// (`--library`). After `<!-- snippet: manifest of PATH -->`, every `.package(` and `.product(`
// line of the block must also appear in the manifest at PATH (relative to `--root`), a package
// that builds with them. Errors name the document and line; `#sourceLocation` makes the
// compiler's do too.

struct Failure: Error {
    var file: String
    var line: Int
    var message: String
}

enum Kind: Equatable {
    case declarations
    case body
    case scoped
    case skip
    /// A manifest whose dependency lines a package at this path uses.
    case manifest(of: String)
}

struct Block {
    var kind: Kind
    /// What the block uses and does not show, from its marker.
    var context: [String]
    /// The line of the block's first code line in its document (1-based).
    var line: Int
    var lines: [String]
}

/// The ```swift blocks of a document, each with the marker before it.
func blocks(of text: String, file: String) throws -> [Block] {
    let lines = text.components(separatedBy: "\n")
    var blocks: [Block] = []
    var index = 0
    while index < lines.count {
        guard lines[index].trimmingCharacters(in: .whitespaces) == "```swift" else {
            index += 1
            continue
        }
        let start = index + 1
        guard let end = lines[start...].firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "```" }) else {
            throw Failure(file: file, line: index + 1, message: "the ```swift block is never closed")
        }
        let (kind, context) = try marker(before: index, in: lines, file: file)
        blocks.append(Block(kind: kind, context: context, line: start + 1, lines: Array(lines[start..<end])))
        index = end + 1
    }
    return blocks
}

/// The marker that ends on the last non-blank line before `fence`, if any.
func marker(before fence: Int, in lines: [String], file: String) throws -> (Kind, context: [String]) {
    var last = fence - 1
    while last >= 0, lines[last].trimmingCharacters(in: .whitespaces).isEmpty { last -= 1 }
    guard last >= 0, lines[last].trimmingCharacters(in: .whitespaces).hasSuffix("-->") else { return (.declarations, []) }
    var first = last
    while first >= 0, !lines[first].contains("<!--") { first -= 1 }
    guard first >= 0 else { return (.declarations, []) }
    let opening = lines[first].trimmingCharacters(in: .whitespaces)
    guard opening.hasPrefix("<!-- snippet:") else { return (.declarations, []) }
    let directive = opening.dropFirst("<!-- snippet:".count).replacingOccurrences(of: "-->", with: "").trimmingCharacters(in: .whitespaces)
    let context = first == last ? [] : Array(lines[(first + 1)..<last])
    switch directive {
    case "declarations": return (.declarations, context)
    case "body": return (.body, context)
    case "scoped": return (.scoped, context)
    case let skip where skip.hasPrefix("skip:") && skip.count > "skip:".count: return (.skip, [])
    case let manifest where manifest.hasPrefix("manifest of ") && manifest.count > "manifest of ".count:
        return (.manifest(of: String(manifest.dropFirst("manifest of ".count))), [])
    default:
        throw Failure(
            file: file, line: first + 1,
            message: "unknown snippet marker '\(directive)' (declarations, body, scoped, manifest of PATH, or skip: with a reason)"
        )
    }
}

func isManifest(_ block: Block) -> Bool {
    let first = block.lines.first?.trimmingCharacters(in: .whitespaces) ?? ""
    return first.hasPrefix("// swift-tools-version") || first.hasPrefix("// Package.swift")
        || block.lines.contains { $0.hasPrefix("import PackageDescription") }
}

/// Checks that the products a manifest takes from EventFleet exist, and that the package its
/// marker names uses its dependency lines.
func checkManifest(_ block: Block, libraries: Set<String>, root: String, file: String) throws {
    if case .manifest(let path) = block.kind {
        let used = try String(contentsOfFile: root + "/" + path, encoding: .utf8)
        for (offset, line) in block.lines.enumerated() where line.contains(".package(") || line.contains(".product(") {
            let code = line.components(separatedBy: "//")[0].trimmingCharacters(in: .whitespaces)
            guard used.contains(code) else {
                throw Failure(file: file, line: block.line + offset, message: "\(path) does not use this line: \(code)")
            }
        }
    }
    let product = try NSRegularExpression(pattern: #"\.product\(name: "([^"]+)", package: "EventFleet"\)"#)
    for (offset, line) in block.lines.enumerated() {
        let range = NSRange(line.startIndex..., in: line)
        for match in product.matches(in: line, range: range) {
            let name = String(line[Range(match.range(at: 1), in: line)!])
            guard libraries.contains(name) else {
                throw Failure(
                    file: file, line: block.line + offset,
                    message: "EventFleet has no library product '\(name)' (it has \(libraries.sorted().joined(separator: ", ")))"
                )
            }
        }
    }
}

let declaration = try NSRegularExpression(
    pattern: #"^((?:@\w+(?:\([^)]*\))?\s+)*)((?:final\s+|indirect\s+)?(?:struct|enum|class|actor|func|extension|protocol|let|var|typealias)\b)"#
)

/// A file-scope line made `fileprivate` when it starts a declaration, without `@main` (a test
/// target has no entry point).
func fileScoped(_ line: String) -> String {
    let line = line.replacingOccurrences(of: "@main ", with: "")
    if line == "@main" { return "" }
    let range = NSRange(line.startIndex..., in: line)
    guard let match = declaration.firstMatch(in: line, range: range) else { return line }
    let attributes = String(line[Range(match.range(at: 1), in: line)!])
    let rest = String(line[Range(match.range(at: 2), in: line)!.lowerBound...])
    return attributes + "fileprivate " + rest
}

/// The names a body's top-level `let` and `var` lines bind, so the generated code can use them
/// (a fragment shows values a reader goes on with).
func boundNames(_ lines: [String]) -> [String] {
    let binding = try! NSRegularExpression(pattern: #"^(?:let|var) (\w+)\b"#)
    return lines.compactMap { line in
        let range = NSRange(line.startIndex..., in: line)
        return binding.firstMatch(in: line, range: range).map { String(line[Range($0.range(at: 1), in: line)!]) }
    }
}

func generate(document: String, libraries: Set<String>, imports: [String], root: String) throws -> String {
    let text = try String(contentsOfFile: document, encoding: .utf8)
    var importLines = Set(imports.map { "import \($0)" })
    var code: [String] = []
    func located(_ block: Block) -> String { "#sourceLocation(file: \"\(document)\", line: \(block.line))" }
    for block in try blocks(of: text, file: document) where block.kind != .skip {
        if isManifest(block) {
            try checkManifest(block, libraries: libraries, root: root, file: document)
            continue
        }
        // Imports move to the top of the file (`@testable` ones name the document's own app, which
        // is this target); a moved line leaves a blank one, so that lines keep their numbers.
        for line in block.lines where line.hasPrefix("import ") { importLines.insert(line) }
        let kept = block.lines.map { line in line.hasPrefix("import ") || line.hasPrefix("@testable import ") ? "" : line }
        switch block.kind {
        case .declarations:
            code += block.context.map(fileScoped) + [located(block)] + kept.map(fileScoped) + ["#sourceLocation()"]
        case .scoped:
            code += ["fileprivate enum Snippet_line\(block.line) {"] + block.context + [located(block)] + kept + ["#sourceLocation()", "}"]
        case .body:
            code += ["fileprivate func snippet_line\(block.line)() async throws {"] + block.context + [located(block)] + kept
            code += ["#sourceLocation()"] + boundNames(kept).map { "_ = \($0)" } + ["}"]
        case .skip, .manifest:
            break
        }
        code.append("")
    }
    return (["// Generated by DocSnippetExtractor from \(document): edit the document, not this file."] + importLines.sorted() + [""] + code)
        .joined(separator: "\n")
}

var root = FileManager.default.currentDirectoryPath
var libraries: Set<String> = []
var imports: [String] = []
var documents: [(document: String, output: String)] = []
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--root": root = arguments.popFirst() ?? root
    case "--library": libraries.insert(arguments.popFirst() ?? "")
    case "--import": imports.append(arguments.popFirst() ?? "")
    case "--document":
        guard let document = arguments.popFirst(), let output = arguments.popFirst() else {
            FileHandle.standardError.write(Data("error: --document needs a document and an output file\n".utf8))
            exit(2)
        }
        documents.append((document, output))
    default:
        FileHandle.standardError.write(Data("error: unknown argument '\(argument)'\n".utf8))
        exit(2)
    }
}
do {
    for (document, output) in documents {
        let generated = try generate(document: document, libraries: libraries, imports: imports, root: root)
        try FileManager.default.createDirectory(
            at: URL(fileURLWithPath: output).deletingLastPathComponent(), withIntermediateDirectories: true
        )
        // Rewritten only when it changes, so that an unchanged document recompiles nothing.
        if (try? String(contentsOfFile: output, encoding: .utf8)) != generated {
            try generated.write(toFile: output, atomically: true, encoding: .utf8)
        }
    }
} catch let failure as Failure {
    FileHandle.standardError.write(Data("\(failure.file):\(failure.line): error: \(failure.message)\n".utf8))
    exit(1)
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}

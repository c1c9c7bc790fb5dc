import Foundation
import PackagePlugin

/// Compiles the Swift code blocks of the README and of every DocC article into the target it is
/// applied to, one generated file per document, so that documentation that no longer compiles
/// fails the build (DocSnippetExtractor says how blocks become code).
@main
struct DocSnippets: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) async throws -> [Command] {
        let root = context.package.directoryURL
        let documents = try [root.appending(path: "README.md")] + articles(under: root.appending(path: "Sources"))
        let output = context.pluginWorkDirectoryURL.appending(path: "snippets")
        var arguments = ["--root", root.path(percentEncoded: false)]
        for library in context.package.products.compactMap({ $0 as? LibraryProduct }) {
            arguments += ["--library", library.name]
        }
        for module in modules(target) { arguments += ["--import", module] }
        let outputs = documents.map { output.appending(path: Self.outputName(of: $0, root: root)) }
        for (document, generated) in zip(documents, outputs) {
            arguments += ["--document", document.path(percentEncoded: false), generated.path(percentEncoded: false)]
        }
        return [
            .buildCommand(
                displayName: "Extracting the Swift snippets of \(documents.count) documents",
                executable: try context.tool(named: "DocSnippetExtractor").url,
                arguments: arguments,
                inputFiles: documents + exampleManifests(under: root.appending(path: "Examples")),
                outputFiles: outputs
            ),
        ]
    }

    /// The modules the target depends on, which every generated file imports: a fragment of a
    /// document shows only the imports a reader needs to see.
    private func modules(_ target: any Target) -> [String] {
        target.dependencies.flatMap { dependency -> [String] in
            switch dependency {
            case .target(let target): [target.name]
            case .product(let product): product.targets.map(\.name)
            @unknown default: []
            }
        }
    }

    /// The manifests of the example packages, which a document's manifest block can be checked
    /// against.
    private func exampleManifests(under examples: URL) -> [URL] {
        let entries = (try? FileManager.default.contentsOfDirectory(at: examples, includingPropertiesForKeys: [.isSymbolicLinkKey])) ?? []
        // `Examples/EventFleet` links back to this package, as a checkout beside the examples.
        let packages = entries.filter { (try? $0.resourceValues(forKeys: [.isSymbolicLinkKey]).isSymbolicLink) != true }
        return packages.map { $0.appending(path: "Package.swift") }.filter { FileManager.default.fileExists(atPath: $0.path(percentEncoded: false)) }
    }

    /// The DocC articles: the Markdown files of every `Sources/*/*.docc` catalog.
    private func articles(under sources: URL) throws -> [URL] {
        let files = FileManager.default
        return try files.contentsOfDirectory(at: sources, includingPropertiesForKeys: nil).sorted { $0.path < $1.path }.flatMap { module in
            let catalogs = (try? files.contentsOfDirectory(at: module, includingPropertiesForKeys: nil)) ?? []
            return try catalogs.filter { $0.pathExtension == "docc" }.flatMap { catalog in
                try files.contentsOfDirectory(at: catalog, includingPropertiesForKeys: nil).filter { $0.pathExtension == "md" }
            }
        }.sorted { $0.path < $1.path }
    }

    /// The generated file of a document: its path under the package, as one Swift file name.
    static func outputName(of document: URL, root: URL) -> String {
        let relative = document.path(percentEncoded: false).dropFirst(root.path(percentEncoded: false).count)
        let name = relative.split(separator: "/").joined(separator: "_").replacingOccurrences(of: ".", with: "_")
        return "Snippets_\(name).swift"
    }
}

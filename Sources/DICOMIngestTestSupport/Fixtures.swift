public import Foundation

/// Locates the repository's fixtures from the test sources (`#filePath`), not from a bundle.
public enum Fixtures {
    /// The package root: the first ancestor of this file that holds `Package.swift`.
    public static let packageRoot: URL = {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while url.path != "/" {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
                return url
            }
            url.deleteLastPathComponent()
        }
        fatalError("Package.swift not found above \(#filePath)")
    }()

    /// Files made by `fixtures/generate.sh` from `fixtures/dumps/`.
    public static let generated = packageRoot.appendingPathComponent("fixtures/generated")
    /// pydicom's test corpus, extracted by `fixtures/fetch-pydicom-corpus.sh`.
    public static let external = packageRoot.appendingPathComponent("fixtures/external/pydicom")

    public static func generated(_ name: String) -> String {
        generated.appendingPathComponent(name).path
    }

    public static var externalCorpusAvailable: Bool {
        FileManager.default.fileExists(atPath: external.appendingPathComponent("expected-charsets.json").path)
    }

    /// Every regular file under `folder`, as absolute paths, sorted.
    public static func files(under folder: URL) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: folder.path) else { return [] }
        var paths: [String] = []
        while let relative = enumerator.nextObject() as? String {
            let path = folder.appendingPathComponent(relative).path
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
                paths.append(path)
            }
        }
        return paths.sorted()
    }
}

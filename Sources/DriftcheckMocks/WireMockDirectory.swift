import DriftcheckCore
import DriftcheckWireMock
import Foundation

extension WireMockEngine {
    /// Loads every `*.json` under `DIRECTORY/mappings/`, sub-folders included, in path order,
    /// as WireMock does, with bodies from `DIRECTORY/__files/` (never outside it).
    public convenience init(directory: String, service: String, now: Date = Date()) throws {
        let filesDirectory = (directory as NSString).appendingPathComponent("__files")
        let mappingsDirectory = (directory as NSString).appendingPathComponent("mappings")
        var names: [String] = []
        if let walker = FileManager.default.enumerator(atPath: mappingsDirectory) {
            while let name = walker.nextObject() as? String {
                if name.hasSuffix(".json") && !(name as NSString).lastPathComponent.hasPrefix(".") {
                    names.append(name)
                }
            }
        }
        let files = try names.sorted().map { name -> MappingFile in
            let path = (mappingsDirectory as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: path) else {
                throw MockConfigurationError("\(path): cannot read the file")
            }
            return MappingFile(path: path, data: data)
        }
        try self.init(
            mappings: files, files: { WireMockFiles.readConfined($0, in: filesDirectory) }, service: service, now: now
        )
    }
}

/// `bodyFileName` bodies from a mocks directory's `__files/`.
enum WireMockFiles {
    /// Reads `__files/NAME`, refusing paths that leave `__files` by `..` or by a symlink.
    static func readConfined(_ name: String, in filesDirectory: String) -> Result<Data, BodyFileRefused> {
        let root = URL(fileURLWithPath: filesDirectory).resolvingSymlinksInPath().standardizedFileURL.path
        let target = URL(fileURLWithPath: filesDirectory).appendingPathComponent(name).resolvingSymlinksInPath()
            .standardizedFileURL.path
        guard !name.hasPrefix("/"), target.hasPrefix(root + "/") else {
            return .failure(BodyFileRefused(reason: "bodyFileName '\(name)' points outside __files/; refused"))
        }
        guard let data = FileManager.default.contents(atPath: target) else {
            return .failure(BodyFileRefused(reason: "bodyFileName '\(name)': no such file in __files/"))
        }
        return .success(data)
    }
}

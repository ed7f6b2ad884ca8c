import ArgumentParser
import DICOMIngest
import DICOMIngestModel
import DICOMIngestSQLite
import Foundation

extension DICOMIngestCommand {
    struct ImageSet: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "image-set",
            abstract: "List image sets, show one, print its metadata document.",
            subcommands: [List.self, Get.self, Metadata.self])

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List image sets (like SearchImageSets without filters).")
            @OptionGroup var options: StoreOptions
            @Option(help: "Data store ID (default: the only one).") var datastoreId: String?

            func run() throws {
                try reportingErrors {
                    let store = try options.open()
                    let datastore = try resolveDatastore(datastoreId, in: store)
                    let sets = try store.imageSets(datastoreId: datastore)
                    printJSON(.object([("imageSetsMetadataSummaries", .array(sets.map(\.summaryJSON)))]))
                }
            }
        }

        struct Get: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show an image set (GetImageSet).")
            @OptionGroup var options: StoreOptions
            @Option(help: "Data store ID (default: the only one).") var datastoreId: String?
            @Argument(help: "Image set ID.") var imageSetId: String

            func run() throws {
                try reportingErrors {
                    let store = try options.open()
                    let datastore = try resolveDatastore(datastoreId, in: store)
                    guard let record = try store.imageSet(datastoreId: datastore, imageSetId: imageSetId) else {
                        throw CLIError(.notFound("Image set \(imageSetId) does not exist"))
                    }
                    printJSON(record.propertiesJSON(version: record.latestVersion, arn: ResourceARN().imageSet(datastore, record.imageSetId)))
                }
            }
        }

        struct Metadata: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Print an image set's metadata document (GetImageSetMetadata, gunzipped).")
            @OptionGroup var options: StoreOptions
            @Option(help: "Data store ID (default: the only one).") var datastoreId: String?
            @Option(help: "Version (default: the latest).") var version: Int?
            @Argument(help: "Image set ID.") var imageSetId: String

            func run() throws {
                try reportingErrors {
                    let store = try options.open()
                    let datastore = try resolveDatastore(datastoreId, in: store)
                    guard let gzip = try store.metadataDocument(datastoreId: datastore, imageSetId: imageSetId, version: version),
                        let document = Compression.gunzip(gzip)
                    else {
                        throw CLIError(.notFound("Image set \(imageSetId) has no version \(version.map(String.init) ?? "")"))
                    }
                    FileHandle.standardOutput.write(Data(document + [0x0A]))
                }
            }
        }
    }
}

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
                    printJSON(.object([("imageSetsMetadataSummaries", .array(sets.map { record in
                        var tags: [(String, JSONValue)] = [
                            ("DICOMPatientId", .string(record.key.patientID)),
                            ("DICOMPatientName", .string(record.key.patientName)),
                            ("DICOMStudyInstanceUID", .string(record.key.studyInstanceUID)),
                            ("DICOMStudyId", .string(record.key.studyID)),
                            ("DICOMAccessionNumber", .string(record.key.accessionNumber)),
                            ("DICOMSeriesInstanceUID", .string(record.key.seriesInstanceUID)),
                            ("DICOMStudyDate", .string(record.key.studyDate)),
                        ]
                        if let number = Int32(record.key.seriesNumber) { tags.append(("DICOMSeriesNumber", .int(Int64(number)))) }
                        return .object([
                            ("imageSetId", .string(record.imageSetId)), ("version", .int(Int64(record.latestVersion))),
                            ("createdAt", .double(record.createdAt)), ("updatedAt", .double(record.updatedAt)),
                            ("isPrimary", .bool(record.isPrimary)), ("DICOMTags", .object(tags)),
                        ])
                    }))]))
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
                    printJSON(.object([
                        ("datastoreId", .string(datastore)), ("imageSetId", .string(record.imageSetId)),
                        ("versionId", .string(String(record.latestVersion))), ("imageSetState", .string(record.state)),
                        ("imageSetWorkflowStatus", .string(record.workflowStatus)), ("createdAt", .double(record.createdAt)),
                        ("updatedAt", .double(record.updatedAt)),
                        ("imageSetArn", .string(ARN.imageSet(datastore, record.imageSetId))),
                        ("isPrimary", .bool(record.isPrimary)),
                    ]))
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

import ArgumentParser
import DICOMIngest
import DICOMIngestModel
import DICOMIngestSQL
import DICOMIngestSQLite
import Foundation

extension DICOMIngestCommand {
    struct Datastore: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create, list, show and delete data stores.",
            subcommands: [Create.self, List.self, Get.self, Delete.self])

        struct Create: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create a data store (CreateDatastore).")
            @OptionGroup var options: StoreOptions
            @Option(help: "Data store name ([A-Za-z0-9._/#-], 1-256).")
            var name: String = "default"
            @Option(help: "How lossless frames are stored: HTJ2K (default) or JPEG_2000_LOSSLESS.")
            var losslessStorageFormat: String = LosslessStorageFormat.htj2k.rawValue

            func validate() throws {
                guard Validation.isJobName(name, maxLength: 256) else {
                    throw ValidationError("--name must match [A-Za-z0-9._/#-]+ (1-256 characters)")
                }
                guard LosslessStorageFormat(rawValue: losslessStorageFormat) != nil else {
                    throw ValidationError("--lossless-storage-format must be HTJ2K or JPEG_2000_LOSSLESS")
                }
            }

            func run() throws {
                try reportingErrors {
                    let created = try options.open().createDatastore(
                        name: name, losslessStorageFormat: LosslessStorageFormat(rawValue: losslessStorageFormat) ?? .htj2k,
                        now: Date().timeIntervalSince1970)
                    printJSON(.object([("datastoreId", .string(created.datastoreId)), ("datastoreStatus", .string(created.datastoreStatus.rawValue))]))
                }
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List data stores (ListDatastores).")
            @OptionGroup var options: StoreOptions

            func run() throws {
                try reportingErrors {
                    let all = try options.open().datastores()
                    printJSON(.object([("datastoreSummaries", .array(all.map { $0.json(arn: ResourceARN()) }))]))
                }
            }
        }

        struct Get: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show a data store (GetDatastore).")
            @OptionGroup var options: StoreOptions
            @Argument(help: "Data store ID.") var datastoreId: String

            func run() throws {
                try reportingErrors {
                    guard let found = try options.open().datastore(id: datastoreId) else {
                        throw CLIError(.notFound("Data store \(datastoreId) does not exist"))
                    }
                    printJSON(.object([("datastoreProperties", found.json(arn: ResourceARN()))]))
                }
            }
        }

        struct Delete: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Delete an empty data store (DeleteDatastore).")
            @OptionGroup var options: StoreOptions
            @Argument(help: "Data store ID.") var datastoreId: String

            func run() throws {
                try reportingErrors {
                    let deleted = try options.open().deleteDatastore(id: datastoreId, now: Date().timeIntervalSince1970)
                    printJSON(.object([("datastoreId", .string(deleted.datastoreId)), ("datastoreStatus", .string(deleted.datastoreStatus.rawValue))]))
                }
            }
        }
    }
}

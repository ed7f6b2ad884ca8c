import ArgumentParser
import DICOMIngest
import DICOMIngestModel
import DICOMIngestSQL
import DICOMIngestSQLite
import Foundation

/// Picks the data store a command works on: the one named, or the only one in the store.
func resolveDatastore(_ requested: String?, in store: any SQLBackedImageSetStore, createIfNone: Bool = false) throws -> String {
    if let requested { return requested }
    let all = try store.datastores()
    if all.count == 1 { return all[0].datastoreId }
    if all.isEmpty {
        if createIfNone { return try store.createDatastore(name: "default", losslessStorageFormat: .htj2k, now: Date().timeIntervalSince1970).datastoreId }
        throw CLIError(.notFound("The store holds no data store; create one with `dicom-ingest datastore create`"))
    }
    throw CLIError(.validation("The store holds \(all.count) data stores; choose one with --datastore-id"))
}

extension DICOMIngestCommand {
    struct Job: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List and show import jobs.", subcommands: [List.self, Get.self])

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List import jobs, newest first (ListDICOMImportJobs), a page at a time.")
            @OptionGroup var options: StoreOptions
            @OptionGroup var page: PageOptions
            @Option(help: "Data store ID (default: the only one).") var datastoreId: String?
            @Option(help: "Only jobs in this status (SUBMITTED, IN_PROGRESS, COMPLETED, FAILED).") var jobStatus: String?

            func validate() throws {
                if let jobStatus, JobStatus(rawValue: jobStatus) == nil {
                    throw ValidationError("--job-status must be one of SUBMITTED, IN_PROGRESS, COMPLETED, FAILED")
                }
            }

            func run() throws {
                try reportingErrors {
                    let store = try options.open()
                    let datastore = try resolveDatastore(datastoreId, in: store)
                    let found = try store.jobs(
                        datastoreId: datastore, status: jobStatus.flatMap(JobStatus.init(rawValue:)), limit: page.maxResults,
                        after: try page.after())
                    page.print(found, as: "jobSummaries", \.summaryJSON)
                }
            }
        }

        struct Get: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show an import job (GetDICOMImportJob).")
            @OptionGroup var options: StoreOptions
            @Option(help: "Data store ID (default: the only one).") var datastoreId: String?
            @Argument(help: "Job ID.") var jobId: String

            func run() throws {
                try reportingErrors {
                    let store = try options.open()
                    let datastore = try resolveDatastore(datastoreId, in: store)
                    guard let job = try store.job(datastoreId: datastore, jobId: jobId) else {
                        throw CLIError(.notFound("Job \(jobId) does not exist in data store \(datastore)"))
                    }
                    printJSON(.object([("jobProperties", job.json)]))
                }
            }
        }
    }
}

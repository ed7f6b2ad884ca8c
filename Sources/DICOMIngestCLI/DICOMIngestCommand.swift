import ArgumentParser

/// The `dicom-ingest` root command.
@main
struct DICOMIngestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dicom-ingest",
        abstract: "High-throughput DICOM P10 ingest engine (AWS HealthImaging compatible).",
        subcommands: [Scan.self, Import.self, Serve.self, Worker.self, Datastore.self, Job.self, ImageSet.self, CodecHelper.self]
    )
}

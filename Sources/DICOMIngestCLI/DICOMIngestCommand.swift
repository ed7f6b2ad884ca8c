import ArgumentParser
import DICOMPixels

/// The `dicom-ingest` root command.
@main
struct DICOMIngestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dicom-ingest",
        abstract: "High-throughput DICOM P10 ingest engine (AWS HealthImaging compatible).",
        subcommands: [Scan.self, Import.self, Serve.self, Worker.self, Datastore.self, Job.self, ImageSet.self, Export.self, CodecHelper.self]
    )

    /// A codec helper serves on the main thread, the thread the engine pins to its own CPU for each request
    /// (`CodecHelperProcess`); every other command runs as ArgumentParser runs it.
    @MainActor static func main() async {
        if CommandLine.arguments.dropFirst().elementsEqual([CodecHelper.configuration.commandName!]) {
            CodecHelperServer.run()
        }
        await main(nil)
    }
}

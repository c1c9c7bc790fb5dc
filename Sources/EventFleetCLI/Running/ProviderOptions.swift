import ArgumentParser
import EventFleetProjections

/// A provider without options of its own adds none to the commands.
extension NoProjectionsOptions: ParsableArguments {
    public init(from decoder: any Decoder) throws {
        self.init()
    }
}

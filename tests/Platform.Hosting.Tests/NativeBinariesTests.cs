using Platform.Hosting.Infrastructure;

namespace Platform.Hosting.Tests;

public sealed class NativeBinariesTests
{
    [Fact]
    public void AMissingServerBinaryNamesTheCommandThatInstallsIt()
    {
        var ex = Assert.Throws<DistributedApplicationException>(() =>
            NativeBinaries.Require("no-such-server-binary", "eng/install.sh (apt-get install no-such-server)", "/nonexistent/no-such-server-binary"));
        Assert.Contains("'no-such-server-binary' was not found", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Install it with: eng/install.sh (apt-get install no-such-server)", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BinariesAreFoundOnPath() =>
        Assert.Equal("/usr/bin/env", NativeBinaries.Find("env", "/nonexistent/env"));

    [Fact]
    public void ToolsDirectoryIsFoundFromTheRepository() =>
        Assert.True(File.Exists(Path.Combine(NativeBinaries.FindToolsDirectory(AppContext.BaseDirectory)!, "s3-server.js")));

    [Fact]
    public void ReachabilityFollowsTheModeOfEveryAncestor()
    {
        var outer = Directory.CreateTempSubdirectory("platform-reach-");
        var inner = Directory.CreateDirectory(Path.Combine(outer.FullName, "inner"));
        File.SetUnixFileMode(outer.FullName, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Assert.False(NativeBinaries.IsReachableByOthers(inner.FullName));
        File.SetUnixFileMode(outer.FullName, File.GetUnixFileMode(outer.FullName) | UnixFileMode.OtherExecute);
        Assert.True(NativeBinaries.IsReachableByOthers(inner.FullName));
        outer.Delete(recursive: true);
    }
}

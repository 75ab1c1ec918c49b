namespace Platform.Manifests.Tests;

/// <summary>The committed aspirate-output/ is exactly what tools/Platform.Aspirate generates from today's AppHost manifest.</summary>
public sealed class DriftTests(PublishFixture fixture)
{
    [Fact]
    public void Committed_aspirate_output_matches_a_fresh_generation()
    {
        var committed = Files(fixture.CommittedDirectory);
        var generated = Files(fixture.GeneratedDirectory);
        var problems = new List<string>();
        problems.AddRange(generated.Keys.Except(committed.Keys).Select(f => $"missing from aspirate-output/: {f}"));
        problems.AddRange(committed.Keys.Except(generated.Keys).Select(f => $"no longer generated: {f}"));
        problems.AddRange(generated.Keys.Intersect(committed.Keys).Where(f => generated[f] != committed[f]).Select(f => $"differs: {f}"));
        Assert.True(problems.Count == 0,
            "aspirate-output/ drifted from the AppHost's manifest. Regenerate it with\n" +
            "  dotnet run --project AppHost -- --publisher manifest --output-path aspire-manifest.json\n" +
            "  dotnet run --project tools/Platform.Aspirate -- generate --manifest AppHost/aspire-manifest.json --output-path aspirate-output\n" +
            string.Join('\n', problems.Order()));
    }

    [Fact]
    public void Generation_is_deterministic()
    {
        // Unordered parts or machine-specific values (paths, hashes) would show up as drift above against the copy generated
        // on another machine; here: LF-only text with the header, and no trace of where the manifest or the checkout lives.
        foreach (var (file, text) in Files(fixture.GeneratedDirectory))
        {
            Assert.False(text.Contains('\r', StringComparison.Ordinal), $"{file} has a CR");
            Assert.StartsWith(Platform.Aspirate.Kubernetes.OutputWriter.Header, text);
            Assert.True(text.EndsWith('\n'), $"{file} must end with a newline");
            Assert.False(text.Contains(fixture.WorkDirectory, StringComparison.Ordinal), $"{file} names the manifest's directory");
            Assert.False(text.Contains(fixture.RepositoryRoot, StringComparison.Ordinal), $"{file} names the checkout's directory");
        }
    }

    private static Dictionary<string, string> Files(string root) =>
        Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(root, f).Replace('\\', '/'), File.ReadAllText);
}

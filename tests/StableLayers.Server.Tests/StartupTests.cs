using System.Net;
using System.Net.Sockets;
using StableLayers.Core;

namespace StableLayers.Server.Tests;

public class StartupTests
{
    [Fact]
    public async Task APortInUseOrAHostThatIsNoAddressIsBadInputNamingTheOption()
    {
        using var engine = new GatedEngine();
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        int port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var busy = await Assert.ThrowsAsync<BadInputException>(() => StableLayersServer.StartAsync(new ServerOptions { Port = port }, engine));
        Assert.StartsWith("--port", busy.Message);

        var host = Assert.Throws<BadInputException>(() => StableLayersServer.ParseHost("example.com"));
        Assert.StartsWith("--host", host.Message);
        Assert.True(StableLayersServer.IsLoopback("localhost"));
        Assert.True(StableLayersServer.IsLoopback("::1"));
        Assert.False(StableLayersServer.IsLoopback("0.0.0.0"));
        var bad = Assert.Throws<BadInputException>(() => new ServerOptions { MaxRunning = 0 }.Validate());
        Assert.StartsWith("--max-running", bad.Message);
    }

    [Fact]
    public async Task ByDefaultTheServerListensOnLoopbackOnly()
    {
        using var engine = new GatedEngine();
        Assert.Equal("127.0.0.1", new ServerOptions().Host);
        await using var server = await StableLayersServer.StartAsync(new ServerOptions { Port = 0 }, engine);
        Assert.Equal("127.0.0.1", server.BaseAddress.Host);
    }
}

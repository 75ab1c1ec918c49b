return await Platform.Aspirate.AspirateCli.InvokeAsync(args, Console.Out, Console.Error, CancellationToken.None);

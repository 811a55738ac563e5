namespace StableLayers.Model.Vae;

/// <summary>One named parameter of the VAE and its shape, exactly as diffusers names it in the state dict.</summary>
public sealed record ParameterShape(string Name, long[] Shape)
{
    public long Count => Shape.Aggregate(1L, (a, b) => a * b);
}

public sealed partial record VaeConfig
{
    /// <summary>
    /// Every parameter of the diffusers model for this config, computed without allocating tensors. It is written
    /// independently of the modules, from diffusers' constructors, so tests can check the modules' names against it.
    /// </summary>
    public IReadOnlyList<ParameterShape> ParameterShapes()
    {
        Validate();
        var list = new List<ParameterShape>();
        int z = ZDim;
        int[] enc = [BaseDim, .. DimMult.Select(m => BaseDim * m)];

        // encoder
        CausalConv(list, "encoder.conv_in", InputChannels, enc[0], 3, 3, 3);
        int block = 0;
        double scale = 1.0;
        for (int i = 0; i < DimMult.Length; i++)
        {
            int inDim = enc[i], outDim = enc[i + 1];
            for (int r = 0; r < NumResBlocks; r++)
            {
                Residual(list, $"encoder.down_blocks.{block++}", inDim, outDim);
                if (AttnScales.Contains(scale))
                {
                    Attention(list, $"encoder.down_blocks.{block++}", outDim);
                }

                inDim = outDim;
            }

            if (i != DimMult.Length - 1)
            {
                Resample(list, $"encoder.down_blocks.{block++}", outDim, up: false, temporal: TemperalDownsample[i]);
                scale /= 2;
            }
        }

        Mid(list, "encoder.mid_block", enc[^1]);
        list.Add(new("encoder.norm_out.gamma", [enc[^1], 1, 1, 1]));
        CausalConv(list, "encoder.conv_out", enc[^1], 2 * z, 3, 3, 3);
        CausalConv(list, "quant_conv", 2 * z, 2 * z, 1, 1, 1);
        CausalConv(list, "post_quant_conv", z, z, 1, 1, 1);

        // decoder: dims run backwards, and each upsample conv halves the channels it hands on
        int[] dec = [BaseDim * DimMult[^1], .. DimMult.Reverse().Select(m => BaseDim * m)];
        var temporalUp = TemperalDownsample.Reverse().ToArray();
        CausalConv(list, "decoder.conv_in", z, dec[0], 3, 3, 3);
        Mid(list, "decoder.mid_block", dec[0]);
        for (int i = 0; i < DimMult.Length; i++)
        {
            int inDim = i > 0 ? dec[i] / 2 : dec[i], outDim = dec[i + 1];
            for (int r = 0; r <= NumResBlocks; r++)
            {
                Residual(list, $"decoder.up_blocks.{i}.resnets.{r}", inDim, outDim);
                inDim = outDim;
            }

            if (i != DimMult.Length - 1)
            {
                Resample(list, $"decoder.up_blocks.{i}.upsamplers.0", outDim, up: true, temporal: temporalUp[i]);
            }
        }

        list.Add(new("decoder.norm_out.gamma", [dec[^1], 1, 1, 1]));
        CausalConv(list, "decoder.conv_out", dec[^1], InputChannels, 3, 3, 3);
        return list;
    }

    /// <summary>Total parameter count (126.9M for <see cref="Full"/>).</summary>
    public long ParameterCount() => ParameterShapes().Sum(p => p.Count);

    private static void CausalConv(List<ParameterShape> list, string name, int inC, int outC, int kt, int kh, int kw)
    {
        list.Add(new($"{name}.weight", [outC, inC, kt, kh, kw]));
        list.Add(new($"{name}.bias", [outC]));
    }

    private static void Conv2d(List<ParameterShape> list, string name, int inC, int outC, int k)
    {
        list.Add(new($"{name}.weight", [outC, inC, k, k]));
        list.Add(new($"{name}.bias", [outC]));
    }

    private static void Residual(List<ParameterShape> list, string name, int inDim, int outDim)
    {
        list.Add(new($"{name}.norm1.gamma", [inDim, 1, 1, 1]));
        CausalConv(list, $"{name}.conv1", inDim, outDim, 3, 3, 3);
        list.Add(new($"{name}.norm2.gamma", [outDim, 1, 1, 1]));
        CausalConv(list, $"{name}.conv2", outDim, outDim, 3, 3, 3);
        if (inDim != outDim)
        {
            CausalConv(list, $"{name}.conv_shortcut", inDim, outDim, 1, 1, 1);
        }
    }

    private static void Attention(List<ParameterShape> list, string name, int dim)
    {
        list.Add(new($"{name}.norm.gamma", [dim, 1, 1]));
        Conv2d(list, $"{name}.to_qkv", dim, 3 * dim, 1);
        Conv2d(list, $"{name}.proj", dim, dim, 1);
    }

    private static void Mid(List<ParameterShape> list, string name, int dim)
    {
        Attention(list, $"{name}.attentions.0", dim);
        Residual(list, $"{name}.resnets.0", dim, dim);
        Residual(list, $"{name}.resnets.1", dim, dim);
    }

    private static void Resample(List<ParameterShape> list, string name, int dim, bool up, bool temporal)
    {
        Conv2d(list, $"{name}.resample.1", dim, up ? dim / 2 : dim, 3);
        if (temporal)
        {
            // upsample3d doubles channels in time_conv (two output frames); downsample3d keeps them, stride 2 in time
            CausalConv(list, $"{name}.time_conv", dim, up ? dim * 2 : dim, 3, 1, 1);
        }
    }
}
